"""seg_core.compare and seg_core.verdict: what the Compare and Explain pages show, computed without Streamlit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seg_core.compare import agreement_share, cost_table, pairwise_dice, truth_table
from seg_core.metrics import segmentation_metrics
from seg_core.verdict import FaithfulnessVerdict, faithfulness_frame, faithfulness_verdict


def square(top: int, left: int, size: int, shape: tuple[int, int, int] = (2, 16, 16)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[0, top : top + size, left : left + size] = 1
    return mask


def test_agreement_share_is_the_intersection_over_the_union() -> None:
    first, second = square(2, 2, 4), square(2, 4, 4)  # 16 voxels each, 8 shared, 24 marked
    assert agreement_share([first, second]) == pytest.approx(8 / 24)
    assert agreement_share([first, first, first]) == 1.0
    empty = np.zeros_like(first)
    assert agreement_share([empty, empty]) == 1.0  # nobody marks anything: nothing to disagree on


def test_pairwise_dice_is_symmetric_with_ones_on_the_diagonal() -> None:
    masks = [square(2, 2, 4), square(2, 4, 4), np.zeros((2, 16, 16), np.uint8)]
    matrix = pairwise_dice(masks)
    assert matrix.shape == (3, 3) and np.array_equal(matrix, matrix.T)
    assert np.all(np.diag(matrix) == 1.0)
    assert matrix[0, 1] == pytest.approx(2 * 8 / 32) and matrix[0, 2] == 0.0
    for i, j in ((0, 1), (1, 2)):  # the same Dice as the full metrics
        assert matrix[i, j] == pytest.approx(segmentation_metrics(masks[i], masks[j])["dice"], abs=1e-6)


def test_truth_table_rounds_and_leaves_undefined_figures_missing() -> None:
    truth = square(2, 2, 4)
    metrics = {"a": segmentation_metrics(square(2, 3, 4), truth), "empty": segmentation_metrics(np.zeros_like(truth), truth)}
    table = truth_table(metrics, spacing_known=False)
    assert list(table.columns) == ["model", "Dice", "IoU", "HD95 (px)", "sensitivity", "precision"]
    assert list(table["model"]) == ["a", "empty"]
    assert table.loc[0, "Dice"] == round(metrics["a"]["dice"], 4)
    assert math.isnan(table.loc[1, "precision"])  # precision of an empty prediction is undefined
    assert "HD95 (mm)" in truth_table(metrics, spacing_known=True).columns


def test_cost_table_scales_units_and_keeps_the_scan_time() -> None:
    costs = {
        "unet": {
            "params": 2_000_000,
            "macs": 3e9,
            "sops": 0,
            "energy_mj": 13.81234,
            "latency_ms": 20.04,
            "source": "metrics.json",
        },
        "snn": {"params": 500_000, "macs": 1e9, "sops": 2.5e8, "energy_mj": None, "latency_ms": None},
    }
    table = cost_table(costs, {"unet": 0.12345, "snn": 1.0})
    assert list(table["model"]) == ["unet", "snn"]
    first = table.iloc[0]
    assert (first["parameters (M)"], first["MACs (G)"], first["SOPs (G)"]) == (2.0, 3.0, 0.0)
    assert (first["energy_mj"], first["latency_ms"], first["this scan (s)"]) == (13.8123, 20.0, 0.123)
    assert table.iloc[1]["SOPs (G)"] == 0.25 and table.iloc[1]["source"] == ""
    assert cost_table({}, {}).empty


FAITHFULNESS = [
    {"method": "Saliency", "key": "saliency", "auc_dice": 0.40, "auc_probability": 0.3, "seconds": 0.1},
    {"method": "Grad-CAM", "key": "gradcam", "auc_dice": 0.25, "auc_probability": 0.2, "seconds": 0.2},
    {"method": "Random order (reference)", "key": "random", "auc_dice": 0.30, "auc_probability": 0.4, "seconds": None},
]


def test_verdict_names_the_method_with_the_smallest_deletion_area() -> None:
    verdict = faithfulness_verdict(FAITHFULNESS)
    assert verdict == FaithfulnessVerdict("Grad-CAM", "gradcam", 0.25, 0.30)
    assert verdict.beats_random and "**Grad-CAM**" in verdict.sentence() and "better than" in verdict.sentence()
    worse = faithfulness_verdict([FAITHFULNESS[0], FAITHFULNESS[2]])
    assert worse is not None and not worse.beats_random and "no better than" in worse.sentence()
    assert faithfulness_verdict([FAITHFULNESS[2]]) is None  # only the reference
    assert faithfulness_verdict(FAITHFULNESS[:2]) is None  # no reference to compare with


def test_faithfulness_frame_has_the_columns_the_page_shows() -> None:
    frame = faithfulness_frame(FAITHFULNESS)
    assert list(frame.columns) == ["method", "area under Dice curve", "area under probability curve"]
    assert list(frame["method"]) == ["Saliency", "Grad-CAM", "Random order (reference)"]
