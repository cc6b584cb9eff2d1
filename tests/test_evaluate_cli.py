"""`python -m seg_core evaluate --split all` on folders in the public layouts, as a user's download has them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.data


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seg_core", *args], cwd=REPO, capture_output=True, text=True, timeout=600)


def test_figshare_download_at_native_512_pixels(data_root: Path, tmp_path: Path) -> None:
    """The real release is 512x512 (ours is downsampled): build such a folder and evaluate all of it."""
    folder = tmp_path / "figshare"
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    for case_id in (1, 2, 3, 700, 1500, 2500):
        source = data_root / "figshare" / "images" / f"{case_id}.png"
        if not source.exists():
            continue
        Image.open(source).resize((512, 512), Image.Resampling.LANCZOS).save(folder / "images" / f"{case_id}.png")
        mask = Image.open(data_root / "figshare" / "masks" / f"{case_id}.png")
        mask.resize((512, 512), Image.Resampling.NEAREST).save(folder / "masks" / f"{case_id}.png")
    written = len(list((folder / "images").glob("*.png")))
    assert written >= 4
    result = run_cli(
        "evaluate", "--model", "unet.figshare", "--dataset", "figshare", "--data-root", str(tmp_path), "--split", "all", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == written and report["split"] == "all"
    assert all(len(case) > 0 for case in report["cases"])
    assert report["dice_mean"] > 0.5, "a model trained at 256 px must still segment 512 px slices"


def test_brats2015_case_folder_per_volume(data_root: Path, tmp_path: Path) -> None:
    case = "brats_2013_pat0005_1"
    target = tmp_path / "brats2015" / case
    target.mkdir(parents=True)
    for path in (data_root / "brats2015" / case).iterdir():
        (target / path.name).symlink_to(path)
    result = run_cli(
        "evaluate", "--model", "unet.figshare", "--dataset", "brats2015", "--data-root", str(tmp_path), "--split", "all", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["groups"] == 1 and report["n"] == 155
    assert report["per_volume"]["dice_n"] == 1 and 0.0 <= report["volume_dice_mean"] <= 1.0


def test_a_folder_without_the_layout_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "figshare").mkdir()
    result = run_cli(
        "evaluate", "--model", "unet.figshare", "--dataset", "figshare", "--data-root", str(tmp_path), "--split", "all"
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "Figshare" in result.stderr


def test_evaluate_needs_a_model_or_all() -> None:
    result = run_cli("evaluate", "--data-root", ".")
    assert result.returncode == 2 and "--all" in result.stderr
