"""The model made for the scan is preselected, the list says which fit, and a mismatch is warned about (AppTest).

The rule itself (which model fits which scan) is :mod:`seg_core.matching`'s, tested in
``tests/test_matching.py``; here: what the pages do with it.
"""

from __future__ import annotations

import numpy as np
import pytest
from apphelpers import SPIKING_TEST_MODEL, app_test, brain_like_slice, png_bytes, texts

SEGMENT = "app_pages/1_Segment.py"


def test_a_model_trained_on_other_data_shows_a_warning_that_says_why(weights_env) -> None:
    at = app_test(SEGMENT)
    at.file_uploader(key="segment_upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    assert at.selectbox(key="segment_model").value == "unet.figshare" and not at.warning
    at.selectbox(key="segment_model").set_value(SPIKING_TEST_MODEL).run()
    assert not at.exception
    warning = texts(at.warning)
    assert "was not made for this scan" in warning and "trained on" in warning
    # The choice holds for this scan on the other pages too, warning included.
    at.switch_page("app_pages/3_Explain.py").run()
    assert at.selectbox(key="explain_model").value == SPIKING_TEST_MODEL and "was not made for this scan" in texts(at.warning)


def test_compare_starts_with_the_two_best_fits_and_warns_for_the_mismatched_one(weights_env) -> None:
    at = app_test("app_pages/2_Compare.py")
    at.file_uploader(key="compare_upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    assert not at.exception, at.exception
    assert at.multiselect(key="compare_models").value == ["unet.figshare", SPIKING_TEST_MODEL]
    assert texts(at.warning).count("was not made for this scan") == 1


def _lgg_slice_with_tumor(data_root) -> tuple[str, bytes]:
    """One TIFF slice of an LGG test patient at full resolution (kaggle_3m), the one with most tumor."""
    import json

    from PIL import Image

    from seg_core.samples import _SPLITS_DIR

    test = set(json.loads((_SPLITS_DIR / "lgg.json").read_text())["test"])
    for case in sorted((data_root / "lgg" / "kaggle_3m").iterdir()):
        if case.name in test:
            masks = sorted(case.glob("*_mask.tif"), key=lambda p: np.asarray(Image.open(p)).sum())
            image = masks[-1].with_name(masks[-1].name.replace("_mask", ""))
            return image.name, image.read_bytes()
    pytest.skip("no LGG test patient in lgg/kaggle_3m")


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize(
    ("source", "expected"), [("brats2018", "unet.brats"), ("lgg-slice", "unet.lgg"), ("figshare", "unet.figshare")]
)
def test_each_kind_of_scan_gets_its_model_and_a_view_with_tumor(weights_env, data_root, monkeypatch, source, expected) -> None:
    import streamlit as st

    from seg_core.samples import list_samples
    from ui.cache import predict

    monkeypatch.setenv("BRAINSEG_DATA_ROOT", str(data_root))
    st.cache_resource.clear()  # the sample list is cached per data root
    at = app_test(SEGMENT)
    if source == "lgg-slice":
        name, data = _lgg_slice_with_tumor(data_root)
        at.file_uploader(key="segment_upload").set_value([(name, data, "image/tiff")]).run()
    else:
        names = [info.name for info in list_samples(data_root) if info.source == source]
        if not names:
            pytest.skip(f"no {source} sample in the data root")
        at.radio(key="segment_source").set_value("Sample").run()
        at.selectbox(key="segment_sample").set_value(names[0]).run()
    assert not at.exception, at.exception
    assert at.selectbox(key="segment_model").value == expected
    assert "was not made for this scan" not in texts(at.warning)
    active = at.session_state["active_scan"]
    mask = predict(active.key, active.scan, expected).mask  # the app's own (cached) prediction
    index = at.slider(key="segment_slice_axial").value if mask.shape[0] > 1 else 0
    assert mask[index].any(), f"the view opens on slice {index}, where {expected} found no tumor"
