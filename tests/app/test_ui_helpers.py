"""The ui helpers the pages call, without a page: cached prediction, summaries, tables, explanation pictures."""

from __future__ import annotations

import numpy as np
import pytest
from apphelpers import SPIKING_TEST_MODEL, brain_like_slice

from seg_core.inference import Segmenter
from seg_core.scans import load_scan
from seg_core.weights import load_model


@pytest.fixture
def scan(weights_env):
    from apphelpers import png_bytes

    return load_scan(png_bytes(brain_like_slice()), name="slice.png")


def test_cached_predict_gives_the_segmenters_prediction_and_reuses_the_model_pass(weights_env, scan) -> None:
    from ui import cache

    direct = Segmenter(load_model("unet.figshare", str(weights_env)))(scan)
    cached = cache.predict("key-ui-test", scan, "unet.figshare")
    assert np.array_equal(cached.mask, direct.mask) and np.allclose(cached.probabilities, direct.probabilities, atol=1e-6)
    assert cached.sizes == direct.sizes and cached.postprocessing == direct.postprocessing
    assert cached.backend == direct.backend and cached.seconds > 0
    # Another threshold re-runs the post-processing only, on the same probabilities.
    stricter = cache.predict("key-ui-test", scan, "unet.figshare", {**cached.postprocessing, "threshold": 0.9})
    assert stricter.probabilities is cached.probabilities and stricter.mask.sum() <= cached.mask.sum()
    assert stricter.postprocessing["threshold"] == 0.9


def test_summaries_pick_pixels_for_a_file_without_spacing(weights_env, scan) -> None:
    from seg_core.report import prediction_report
    from ui import cache
    from ui.summaries import size_caption, size_metrics, slice_profile, truth_line

    prediction = cache.predict("key-ui-test", scan, "unet.figshare")
    values, unit = slice_profile(scan, prediction, "axial")
    assert unit == "px" and values.tolist() == [float(prediction.mask.sum())]
    report = prediction_report(scan, prediction, prediction.mask)
    figures = dict(size_metrics(scan, report, 0.05))
    assert figures["Tumor found"] == "yes" and figures["Tumor area"].endswith(" px") and figures["Time"] == "50 ms"
    assert "Dice 1.000" in truth_line(scan, report) and truth_line(scan, prediction_report(scan, prediction)) is None
    assert size_caption(scan, prediction).startswith(f"tumor {int(prediction.mask.sum())} px")


def test_zoo_tables_are_dataframes(weights_env) -> None:
    from ui.zoo import architectures_table, leaderboard_tables, ranked_models, shipped_models_table, unranked_models

    shipped = shipped_models_table(["unet.figshare", SPIKING_TEST_MODEL, "missing.model"])
    assert list(shipped["model"]) == ["unet.figshare", SPIKING_TEST_MODEL]  # an unreadable folder is left out
    assert list(shipped["spiking"]) == ["no", "yes"]
    architectures = architectures_table(["unet.figshare"])
    assert architectures.set_index("architecture").loc["unet", "trained weights"] == "unet.figshare"
    board = {
        "datasets": {"figshare": {"ranking": ["unet.figshare"], "primary_metric": "dice", "primary_label": "Dice per image"}},
        "rows": [{"id": "unet.figshare", "primary_mean": 0.7, "primary_n": 10}],
    }
    tables = leaderboard_tables(board)
    assert tables["figshare"]["table"].iloc[0]["Dice per image"] == 0.7 and tables["figshare"]["plotted"]
    assert ranked_models(tables) == ["unet.figshare"]
    assert unranked_models(["unet.figshare", SPIKING_TEST_MODEL], tables) == [SPIKING_TEST_MODEL]


def test_explanation_panels_and_spiking_maps_are_slice_sized(weights_env, scan) -> None:
    from ui import cache
    from ui.explain_view import attribution_panels, spiking_maps

    gray = np.asarray(brain_like_slice(), np.uint8)
    result = cache.explanation("key-ui-test", scan, SPIKING_TEST_MODEL, 0, ("saliency",), None, None, 8)
    panels = attribution_panels(gray, result, opacity=0.6, outline=True)
    assert [panel.title for panel in panels][0] == "Scan" and len(panels) == 2
    assert all(panel.picture.shape == (*gray.shape, 3) for panel in panels)
    assert panels[1].notes and panels[1].notes[0].endswith(")")
    assert attribution_panels(gray, result, 0.6, outline=False)[0].picture is gray
    block = result.spiking.blocks[0]
    maps = spiking_maps(gray, block, 0)
    assert maps.rates.shape == maps.attention.shape == (*gray.shape, 3)
    assert maps.top_rate > 0 and maps.attention_range[0] <= maps.attention_range[1]
