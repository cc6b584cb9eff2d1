"""The Compare page under AppTest: two models side by side, agreement, ground-truth metrics, cost."""

from __future__ import annotations

from apphelpers import (
    SPIKING_TEST_MODEL,
    app_test,
    assert_upload_refused,
    brain_like_slice,
    png_bytes,
    table_with,
    texts,
    tumor_mask,
)

PAGE = "app_pages/2_Compare.py"


def test_two_models_side_by_side_with_agreement_truth_metrics_and_cost(weights_env) -> None:
    at = app_test(PAGE)
    at.file_uploader(key="compare_upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key="compare_models").value) == {"unet.figshare", SPIKING_TEST_MODEL}
    assert len(at.image) == 3  # two models and the agreement map
    captions = [image.proto.imgs[0].caption for image in at.image]
    assert captions[:2] == ["unet.figshare", SPIKING_TEST_MODEL] and captions[2] == "Agreement map"
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # pairwise agreement and cost
    energy, latency = "estimated energy per slice (mJ)", "time per slice (ms)"
    cost = table_with(at, energy)
    assert list(cost["model"]) == ["unet.figshare", SPIKING_TEST_MODEL]
    assert (cost[energy] > 0).all() and (cost[latency] > 0).all()
    assert not {"energy_mj", "latency_ms"} & set(cost.columns) and "metrics.json" not in set(cost["cost figures from"])

    at.file_uploader(key="compare_truth").set_value(("truth.png", png_bytes(tumor_mask()), "image/png")).run()
    assert not at.exception and not at.error
    table = table_with(at, "Dice")
    assert list(table["model"]) == ["unet.figshare", SPIKING_TEST_MODEL]
    assert set(table.columns) >= {"Dice", "IoU", "HD95 (px)"}
    assert table["Dice"].iloc[0] > 0.5  # the shipped U-Net finds the bright disk


def test_ground_truth_of_the_wrong_size_is_refused_clearly(weights_env) -> None:
    at = app_test(PAGE)
    at.file_uploader(key="compare_upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    at.file_uploader(key="compare_truth").set_value(("truth.png", png_bytes(tumor_mask(128)), "image/png")).run()
    assert not at.exception
    assert "the scan is 256x256" in texts(at.error)


def test_a_single_model_is_shown_with_a_warning(weights_env) -> None:
    at = app_test(PAGE)
    at.file_uploader(key="compare_upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    at.multiselect(key="compare_models").set_value(["unet.figshare"]).run()
    assert not at.exception
    assert "needs two models" in texts(at.warning)


def test_bad_upload_gives_a_clear_error(weights_env) -> None:
    assert_upload_refused(app_test(PAGE), "compare_upload", ("broken.tif", b"II*\x00 broken", "image/tiff"))
