"""The home page under Streamlit's AppTest: upload, see the overlay and figures; a bad file gives an error."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from seg_core.weights import list_weights

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif("unet.figshare" not in list_weights(), reason="needs the shipped unet.figshare weights")


def app_test():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(REPO / "app.py"), default_timeout=120)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def brain_like_slice() -> np.ndarray:
    y, x = np.mgrid[-1:1:256j, -1:1:256j]
    head = ((y / 0.9) ** 2 + (x / 0.75) ** 2) < 1
    tumor = ((y + 0.2) ** 2 + (x - 0.3) ** 2) < 0.03
    return (head * 90 + tumor * 140).astype(np.uint8)


def test_upload_shows_overlay_and_figures() -> None:
    at = app_test().run()
    assert not at.exception
    at.file_uploader(key="upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    assert not at.exception, at.exception
    assert not at.error
    assert len(at.image) == 1
    labels = [metric.label for metric in at.metric]
    assert "Tumor found" in labels and "Tumor area" in labels


def test_bad_upload_gives_a_clear_error_and_the_app_keeps_running() -> None:
    at = app_test().run()
    at.file_uploader(key="upload").set_value([("broken.png", b"\x89PNG\r\n\x1a\n not really", "image/png")]).run()
    assert not at.exception
    assert at.error and "Could not use this upload" in at.error[0].value
