"""The Segment page under AppTest: upload or sample -> overlay, figures and downloads; a bad file -> an error."""

from __future__ import annotations

import numpy as np
import pytest
from apphelpers import SPIKING_TEST_MODEL, TWO_SEQUENCE_MODEL, app_test, brain_like_slice, phantom_volume_file, png_bytes, texts

from seg_core.inference import Segmenter

PAGE = "app_pages/1_Segment.py"


@pytest.fixture
def forward_passes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of a model over a scan, by weights id: the tests check sliders never cause one."""
    import streamlit as st

    st.cache_resource.clear()  # results are shared server-wide; start from an empty store
    calls: list[str] = []
    original = Segmenter.predict_probabilities

    def counted(self, scan, progress=None):
        calls.append(self.model_id)
        return original(self, scan, progress)

    monkeypatch.setattr(Segmenter, "predict_probabilities", counted)
    return calls


def upload_slice(at, name: str = "slice.png"):
    return at.file_uploader(key="segment_upload").set_value([(name, png_bytes(brain_like_slice()), "image/png")]).run()


def test_png_upload_shows_overlay_sizes_and_downloads(weights_env, forward_passes) -> None:
    at = app_test(PAGE)
    assert not at.exception and "Upload a brain MRI" in texts(at.info)
    upload_slice(at)
    assert not at.exception, at.exception
    assert not at.error
    assert len(at.image) == 1
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Tumor found"] == "yes" and metrics["Tumor area"].endswith("px")
    downloads = {button.proto.label for button in at.get("download_button")}
    assert downloads == {"Download mask", "Download report (JSON)", "Download report (CSV)"}
    # The model list offers only weights that can run on the scan (a grayscale PNG: one channel), the one made
    # for it first and preselected; the others say they were trained on other data.
    options = at.selectbox(key="segment_model").options
    assert options[0].startswith("unet.figshare: ") and "made for this scan" in options[0]
    assert at.selectbox(key="segment_model").value == "unet.figshare"
    assert all("trained on other data" in o for o in options[1:]) and not any(TWO_SEQUENCE_MODEL in o for o in options)
    assert not any("unet.brats" in o for o in options)  # it needs FLAIR and T1c
    assert forward_passes == ["unet.figshare"]


def test_sliders_and_threshold_never_rerun_the_model(weights_env, forward_passes) -> None:
    at = upload_slice(app_test(PAGE))
    at.slider(key="segment_opacity").set_value(0.8).run()
    at.radio(key="segment_style").set_value("contour").run()
    at.slider(key="segment_window").set_value((5.0, 95.0)).run()
    threshold = next(s for s in at.slider if s.label.startswith("Threshold"))
    threshold.set_value(0.7).run()
    assert not at.exception and len(at.image) == 1
    assert forward_passes == ["unet.figshare"]


def test_switching_model_segments_with_the_other_model(weights_env) -> None:
    at = upload_slice(app_test(PAGE))
    at.selectbox(key="segment_model").set_value(SPIKING_TEST_MODEL).run()
    assert not at.exception and not at.error
    assert SPIKING_TEST_MODEL in at.image[0].proto.imgs[0].caption


def test_nifti_volume_gives_planes_strip_volume_and_nifti_mask(weights_env) -> None:
    at = app_test(PAGE)
    name, data = phantom_volume_file()
    at.file_uploader(key="segment_upload").set_value([(name, data, "application/gzip")]).run()
    assert not at.exception, at.exception
    assert not at.error
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Tumor volume"].endswith("mL") and "of 24" in metrics["Slices with tumor"]
    assert len(at.get("plotly_chart")) == 1  # the per-slice tumor strip
    for plane in ("coronal", "sagittal"):
        at.radio(key="segment_plane").set_value(plane).run()
        assert not at.exception and len(at.image) == 1
        assert at.slider(key=f"segment_slice_{plane}").max == 95
    mask = next(button for button in at.get("download_button") if button.proto.label == "Download mask")
    assert mask.proto.url.endswith(".gz")  # a gzip-compressed NIfTI, not a PNG


def test_sample_with_ground_truth_shows_dice(weights_env) -> None:
    at = app_test(PAGE)
    at.radio(key="segment_source").set_value("Sample").run()
    at.selectbox(key="segment_sample").set_value("phantom-2d").run()
    assert not at.exception and not at.error
    assert "Against the ground truth" in texts(at.markdown)
    assert at.checkbox(key="segment_truth_outline").value is True


@pytest.mark.parametrize(
    ("name", "data"),
    [("broken.png", b"\x89PNG\r\n\x1a\n not really"), ("scan.nii.gz", b"not a nifti"), ("empty.dcm", b"")],
)
def test_bad_upload_gives_a_clear_error_and_the_app_keeps_running(weights_env, name: str, data: bytes) -> None:
    at = app_test(PAGE)
    at.file_uploader(key="segment_upload").set_value([(name, data, "application/octet-stream")]).run()
    assert not at.exception
    assert at.error and "Could not use this upload" in at.error[0].value
    upload_slice(at)  # the next upload still works
    assert not at.exception and len(at.image) == 1


@pytest.mark.data
@pytest.mark.slow
def test_a_155_slice_brats_case_uploaded_as_zip_finishes_with_its_ground_truth(weights_env, data_root) -> None:
    from seg_core.samples import list_samples, sample_file

    cases = [info.name for info in list_samples(data_root) if info.source == "brats2015"]
    if not cases:
        pytest.skip("no BraTS 2015 case in the data root")
    name, data = sample_file(cases[0], data_root)
    at = app_test(PAGE)
    at.file_uploader(key="segment_upload").set_value([(name, data, "application/zip")]).run()
    assert not at.exception, at.exception
    assert not at.error
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Slices with tumor"].endswith("of 155") and metrics["Tumor volume"].endswith("mL")
    assert "Against the ground truth" in texts(at.markdown)  # the case's OTMultiClass labels
    at.slider(key="segment_slice_axial").set_value(80).run()
    assert not at.exception and len(at.image) == 1


def strip_values(chart):
    import json

    import numpy as np

    return np.asarray(json.loads(chart.proto.spec)["data"][1]["y"], dtype=float)


def test_volume_view_goes_to_the_tumor_and_stays_where_the_user_put_it(weights_env) -> None:
    import numpy as np

    at = app_test(PAGE)
    name, data = phantom_volume_file()
    at.file_uploader(key="segment_upload").set_value([(name, data, "application/gzip")]).run()
    assert not at.exception, at.exception
    strip = next(chart for chart in at.get("plotly_chart") if chart.key == "segment_strip_axial")
    bars = strip_values(strip)
    assert bars.max() > 0 and at.slider(key="segment_slice_axial").value == int(np.argmax(bars))
    # A model switch moves the view to the new mask's tumor...
    at.selectbox(key="segment_model").set_value(SPIKING_TEST_MODEL).run()
    assert not at.exception
    # ...but once the user has moved the slider, a switch leaves it there and offers a way back.
    at.slider(key="segment_slice_axial").set_value(0).run()
    at.selectbox(key="segment_model").set_value("unet.figshare").run()
    assert at.slider(key="segment_slice_axial").value == 0
    at.button(key="segment_go_to_tumor").click().run()
    assert at.slider(key="segment_slice_axial").value == int(np.argmax(bars))
    # Another plane starts on its own largest cross-section.
    at.radio(key="segment_plane").set_value("coronal").run()
    coronal = next(chart for chart in at.get("plotly_chart") if chart.key == "segment_strip_coronal")
    bars = strip_values(coronal)
    assert at.slider(key="segment_slice_coronal").value == int(np.argmax(bars))


def test_a_2d_slice_can_be_checked_against_its_uploaded_mask_and_downloads_take_the_files_name(weights_env) -> None:
    from apphelpers import tumor_mask

    at = upload_slice(app_test(PAGE), name="patient 7 slice.png")
    assert "Against the ground truth" not in texts(at.markdown)
    at.file_uploader(key="segment_truth").set_value([("mask.png", png_bytes(tumor_mask()), "image/png")]).run()
    assert not at.exception and not at.error
    assert "Against the ground truth:** Dice" in texts(at.markdown)
    assert at.checkbox(key="segment_truth_outline").value is True
    # Downloads take the uploaded file's name (AppTest shows only their media URLs, so ask mask_file directly).
    from ui.cache import mask_file, predict

    active = at.session_state["active_scan"]
    assert active.stem == "patient_7_slice"
    name, _, mime = mask_file(active.key, active.stem, active.scan, predict(active.key, active.scan, "unet.figshare"))
    assert name == "patient_7_slice_unet.figshare_mask.png" and mime == "image/png"


def test_upload_stem_names_downloads_after_the_files() -> None:
    from ui.state import upload_stem

    assert upload_stem(["scan.nii.gz"]) == "scan"
    assert upload_stem(["Brats18_CBICA_AQN_1_flair.nii.gz", "Brats18_CBICA_AQN_1_t1ce.nii.gz"]) == "Brats18_CBICA_AQN_1"
    assert upload_stem(["a/IM-0001.dcm", "a/IM-0002.dcm"]) == "IM-000"
    assert upload_stem(["../../etc/x y.png"]) == "x_y"
    assert upload_stem([]) == "scan"


def test_ground_truth_outline_is_at_least_two_pixels_wide_in_its_own_colour() -> None:
    import numpy as np

    from seg_core.visualize import TRUTH_COLOR, mask_picture

    gray = np.full((128, 128), 100, dtype=np.uint8)
    truth = np.zeros((128, 128), dtype=np.uint8)
    truth[40:80, 40:80] = 1
    picture = mask_picture(gray, np.zeros_like(truth), truth)
    outlined = np.all(picture == np.asarray(TRUTH_COLOR, dtype=np.uint8), axis=-1)
    row = outlined[60]  # across the left and right edges of the square
    assert row[40] and row[41] and row[78] and row[79] and not row[60]
    assert outlined.sum() >= 2 * 4 * 38  # a band at least 2 px wide all round


def test_a_volume_opens_in_niivue_with_its_mask_on_the_same_grid(weights_env) -> None:
    import gzip

    import nibabel as nib

    at = app_test(PAGE)
    name, data = phantom_volume_file()
    at.file_uploader(key="segment_upload").set_value([(name, data, "application/gzip")]).run()
    at.radio(key="segment_viewer").set_value("Three planes (NiiVue)").run()
    assert not at.exception, at.exception
    assert "three planes are linked" in texts(at.caption)
    assert not at.image  # NiiVue replaces the slice picture

    from ui.cache import predict
    from ui.niivue_view import volume_files

    active = at.session_state["active_scan"]
    scan_bytes, mask_bytes = volume_files(active, predict(active.key, active.scan, "unet.figshare"), 0)
    image = nib.Nifti1Image.from_bytes(gzip.decompress(scan_bytes))
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(mask_bytes))
    assert image.shape == mask.shape and np.allclose(image.affine, mask.affine)
    assert image.get_data_dtype() == np.uint8 and 0 < np.asarray(mask.dataobj).sum() < np.prod(mask.shape)


def test_an_upload_that_finds_the_decode_budget_busy_says_so_and_reads_on_the_next_run(weights_env) -> None:
    import streamlit as st

    from seg_core.scans import set_decode_budget
    from seg_core.scans.budget import Reservation

    st.cache_resource.clear()  # the slice must be decoded, not found among scans read by earlier tests
    budget = set_decode_budget(4 * 1024 * 1024, wait_s=0.2)
    other_upload = Reservation(budget, "another upload")
    budget.acquire(other_upload, budget.capacity)  # another user's scan holds the whole budget
    try:
        at = upload_slice(app_test(PAGE))
        assert not at.exception and not at.error and not at.image
        assert at.warning and "busy reading other uploads" in at.warning[0].value
        assert "nothing is wrong with it" in at.warning[0].value
        other_upload.close()
        at.run()  # the same file, once the other upload is done
        assert not at.exception and not at.warning and len(at.image) == 1
    finally:
        other_upload.close()
        set_decode_budget(None)
