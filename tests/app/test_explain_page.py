"""The Explain page under AppTest: Captum maps and deletion curves; spiking attention, rates, raster, steps."""

from __future__ import annotations

import pytest
from apphelpers import SPIKING_TEST_MODEL, app_test, assert_upload_refused, brain_like_slice, png_bytes, table_with, texts

PAGE = "app_pages/3_Explain.py"


def upload(at, model: str | None = None):
    """Upload a slice (the best-fitting model is preselected), then choose ``model`` when given."""
    at.file_uploader(key="explain_upload").set_value([("slice.png", png_bytes(brain_like_slice()), "image/png")]).run()
    return at.selectbox(key="explain_model").set_value(model).run() if model else at


def press_explain(at):
    return next(button for button in at.button if button.label == "Explain").click().run()


@pytest.fixture
def explain_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, tuple[str, ...]]]:
    """Every explain_slice call, as (model, methods): the tests check nothing runs before the button."""
    import streamlit as st

    import seg_core.explain

    st.cache_resource.clear()  # explanations are also shared server-wide; start from an empty store
    calls: list[tuple[str, tuple[str, ...]]] = []
    original = seg_core.explain.explain_slice

    def counted(segmenter, scan, index, methods, **options):
        calls.append((segmenter.model_id, tuple(methods)))
        return original(segmenter, scan, index, methods, **options)

    monkeypatch.setattr(seg_core.explain, "explain_slice", counted)
    return calls


def test_nothing_is_explained_before_the_button_nor_on_a_model_switch(weights_env, explain_calls) -> None:
    at = upload(app_test(PAGE), "unet.figshare")
    assert not at.exception, at.exception
    assert explain_calls == [] and "press *Explain*" in texts(at.info)
    assert "4 methods to compute: " in texts(at.caption) and "on this machine now" in texts(at.caption)  # the estimate
    at.selectbox(key="explain_model").set_value(SPIKING_TEST_MODEL).run()
    assert not at.exception and explain_calls == [] and not at.image
    at.multiselect(key="explain_methods").set_value(["saliency"]).run()
    press_explain(at)
    assert explain_calls == [(SPIKING_TEST_MODEL, ("saliency",))]
    assert [image.proto.imgs[0].caption for image in at.image][:2] == ["Scan", "Saliency"]
    # Adding a method computes only that one; going back to both reuses the session's results.
    at.multiselect(key="explain_methods").set_value(["saliency", "gradcam"]).run()
    press_explain(at)
    assert explain_calls[-1] == (SPIKING_TEST_MODEL, ("gradcam",))
    at.selectbox(key="explain_model").set_value("unet.figshare").run()
    at.selectbox(key="explain_model").set_value(SPIKING_TEST_MODEL).run()
    assert len(explain_calls) == 2 and {"Saliency", "Grad-CAM"} <= {image.proto.imgs[0].caption for image in at.image}


def test_spiking_model_shows_maps_faithfulness_and_activity_over_time(weights_env) -> None:
    at = press_explain(upload(app_test(PAGE), SPIKING_TEST_MODEL))
    assert not at.exception, at.exception
    assert not at.error
    assert at.selectbox(key="explain_model").value == SPIKING_TEST_MODEL
    captions = [image.proto.imgs[0].caption for image in at.image]
    assert set(captions[:5]) == {"Scan", "Saliency", "Integrated Gradients", "Grad-CAM", "Occlusion"}
    assert any(c.startswith("Spike rate") for c in captions) and any(c.startswith("Attention applied") for c in captions)
    chart_keys = {chart.key for chart in at.get("plotly_chart") if chart.key}
    assert chart_keys >= {
        "explain_deletion",
        "explain_temporal",
        "explain_channel",
        "explain_animation",
        "explain_rates",
        "explain_raster",
    }
    table = table_with(at, "area under Dice curve")
    assert "Random order (reference)" in set(table["method"])
    assert "time steps" in texts(at.markdown) and "most stay silent" in texts(at.markdown)
    assert "Which blocks and time steps matter here:** " in texts(at.markdown)  # the engine's summary in words
    # Stepping through time and changing block redraws from the stored result.
    at.slider(key="explain_step").set_value(3).run()
    at.selectbox(key="explain_block").set_value("stages.2.0").run()
    assert not at.exception
    assert "stages." not in texts(at.caption) + " ".join(i.proto.imgs[0].caption for i in at.image)  # blocks in words
    assert any("step 3" in image.proto.imgs[0].caption for image in at.image)


def test_conventional_model_with_chosen_methods_and_layer(weights_env) -> None:
    at = upload(app_test(PAGE), "unet.figshare")
    assert not at.exception, at.exception
    at.multiselect(key="explain_methods").set_value(["saliency", "gradcam"]).run()
    at.selectbox(key="explain_layer").set_value("decoders.1").run()
    press_explain(at)
    assert not at.exception, at.exception
    captions = [image.proto.imgs[0].caption for image in at.image if image.proto.imgs[0].caption]  # not the legend
    assert sorted(captions) == ["Grad-CAM", "Saliency", "Scan"]
    assert "layer: second decoder step" in texts(at.caption) and "decoders.1" not in texts(at.caption)
    assert "Spiking views" in texts(at.caption)


def test_bad_upload_gives_a_clear_error(weights_env) -> None:
    assert_upload_refused(app_test(PAGE), "explain_upload", ("case.zip", b"PK\x03\x04 broken zip", "application/zip"))


def test_deletion_curves_can_follow_the_probability(weights_env) -> None:
    at = press_explain(upload(app_test(PAGE), SPIKING_TEST_MODEL))
    at.radio(key="explain_measure").set_value("probability").run()
    assert not at.exception
    figure = next(chart for chart in at.get("plotly_chart") if chart.key == "explain_deletion")
    assert "probability" in figure.proto.spec
