"""Helpers for the app tests: a weights folder with the shipped U-Net and a tiny spiking model, test files, AppTest.

The app reads its weights from ``$BRAINSEG_WEIGHTS_DIR`` when set; the tests point it at a temporary
folder holding copies of ``unet.figshare``, ``unet.brats`` and ``unet.lgg``, and a randomly initialised narrow ``tcsa_snn`` (64 px input,
so the spiking views are exercised in seconds). Models in it are for testing the app only.
"""

from __future__ import annotations

import io
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from seg_core.weights import WEIGHTS_DIR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tiny_models import save_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SPIKING_TEST_MODEL = "tcsa_snn.apptest"
TWO_SEQUENCE_MODEL = "unet.twoseq"
#: Shipped weights made for the multi-sequence data sets, copied beside unet.figshare when present.
SCAN_MATCHED_MODELS = ("unet.brats", "unet.lgg")


def make_weights_dir(root: Path) -> Path:
    """``root/weights`` with ``unet.figshare``, ``unet.brats`` and ``unet.lgg`` (copied), a lite spiking model and a
    model needing two sequences."""
    folder = root / "weights"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(WEIGHTS_DIR / "unet.figshare", folder / "unet.figshare", dirs_exist_ok=True)
    for model_id in SCAN_MATCHED_MODELS:  # the models made for BraTS and LGG scans, when shipped
        if (WEIGHTS_DIR / model_id / "model.safetensors").exists():
            shutil.copytree(WEIGHTS_DIR / model_id, folder / model_id, dirs_exist_ok=True)
    spiking = {"normalization": {"kind": "percentile"}, "threshold": 0.5, "spiking": True, "dataset": "apptest"}
    card = "# tcsa_snn.apptest\n\nRandom weights for the app tests.\n"
    note = {"metrics": {"note": "random weights, for app tests only"}, "card": card}
    save_tiny_model(folder / SPIKING_TEST_MODEL, "tcsa_snn", {"in_channels": 1, "width": 8}, 64, **note, **spiking)
    # Not reseeded: the same weights as when both models were drawn from one seed in a row.
    two = {"modalities": ["t1c", "flair"], "dataset": "apptest"}
    save_tiny_model(folder / TWO_SEQUENCE_MODEL, "unet", {"in_channels": 2, "width": 4}, 64, seed=None, **two)
    return folder


def app_test(page: str | None = None, **session: object):
    """An AppTest of the home page, run once, switched to ``page`` (e.g. ``"app_pages/1_Segment.py"``) when given."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=180)
    for key, value in session.items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    return at


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def brain_like_slice(size: int = 256) -> np.ndarray:
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    head = ((y / 0.9) ** 2 + (x / 0.75) ** 2) < 1
    tumor = ((y + 0.2) ** 2 + (x - 0.3) ** 2) < 0.03
    return (head * 90 + tumor * 140).astype(np.uint8)


def tumor_mask(size: int = 256) -> np.ndarray:
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    return ((((y + 0.2) ** 2 + (x - 0.3) ** 2) < 0.03) * 255).astype(np.uint8)


def phantom_volume_file() -> tuple[str, bytes]:
    from seg_core.samples import sample_file

    return sample_file("phantom-3d")


def texts(elements) -> str:
    return " ".join(str(element.value) for element in elements)


def table_with(at, column: str):
    """The first dataframe shown whose columns include ``column`` (AppTest does not expose dataframe keys)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a {column!r} column; tables: {[list(f.value.columns) for f in at.dataframe]}")


def assert_upload_refused(at, uploader: str, file: tuple[str, bytes, str]) -> None:
    """Upload ``(name, bytes, mime)`` with the uploader keyed ``uploader``: the page says why, and does not crash."""
    at.file_uploader(key=uploader).set_value([file]).run()
    assert not at.exception
    assert at.error and "Could not use this upload" in at.error[0].value
