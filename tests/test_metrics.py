"""seg_core.metrics against cases computed by hand (counts and distances worked out in the comments)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice, compute_iou

from seg_core.metrics import (
    METRIC_NAMES,
    aggregate_dice,
    lesion_counts,
    segmentation_metrics,
    summarize,
    volume_metrics,
    worst_distance,
)


def square(shape: tuple[int, ...], rows: slice, cols: slice, slices: slice | None = None) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    if slices is None:
        mask[rows, cols] = 1
    else:
        mask[slices, rows, cols] = 1
    return mask


# --- overlap metrics ---------------------------------------------------------------------------


def test_overlapping_rectangles_exact_values() -> None:
    # 10x10 image. Truth 4x4 (16 px) at rows 2-5, cols 2-5; prediction 4x5 (20 px) at rows 2-5, cols 3-7.
    # TP = 4x3 = 12, FP = 20 - 12 = 8, FN = 16 - 12 = 4, TN = 100 - 24 = 76.
    truth = square((10, 10), slice(2, 6), slice(2, 6))
    pred = square((10, 10), slice(2, 6), slice(3, 8))
    m = segmentation_metrics(pred, truth)
    assert m["dice"] == pytest.approx(24 / 36)  # 2TP / (2TP + FP + FN)
    assert m["iou"] == pytest.approx(12 / 24)
    assert m["precision"] == pytest.approx(12 / 20)
    assert m["sensitivity"] == pytest.approx(12 / 16)
    assert m["specificity"] == pytest.approx(76 / 84)
    assert m["accuracy"] == pytest.approx(88 / 100)
    assert m["pred_pixels"] == 20 and m["true_pixels"] == 16
    assert list(m) == [
        *METRIC_NAMES,
        "pred_pixels",
        "true_pixels",
        "lesions",
        "lesions_detected",
        "lesions_missed",
        "false_positive_components",
    ]


def test_dice_and_iou_match_monai_compute_dice_and_compute_iou() -> None:
    # We take Dice/IoU from MONAI's confusion matrix ("f1 score", "threat score"): they must equal compute_dice / compute_iou.
    rng = np.random.default_rng(0)
    pred = (rng.random((64, 64)) > 0.6).astype(np.uint8)
    truth = (rng.random((64, 64)) > 0.5).astype(np.uint8)
    m = segmentation_metrics(pred, truth)
    as_tensor = torch.from_numpy
    assert m["dice"] == pytest.approx(float(compute_dice(as_tensor(pred)[None, None], as_tensor(truth)[None, None])), rel=1e-6)
    assert m["iou"] == pytest.approx(float(compute_iou(as_tensor(pred)[None, None], as_tensor(truth)[None, None])), rel=1e-6)


def test_prediction_and_truth_swap_swaps_precision_and_sensitivity() -> None:
    truth = square((10, 10), slice(2, 6), slice(2, 6))
    pred = square((10, 10), slice(2, 6), slice(3, 8))
    forward, backward = segmentation_metrics(pred, truth), segmentation_metrics(truth, pred)
    assert forward["precision"] == pytest.approx(backward["sensitivity"])
    assert forward["dice"] == pytest.approx(backward["dice"])


def test_bool_masks_are_accepted() -> None:
    truth = square((10, 10), slice(2, 6), slice(2, 6)).astype(bool)
    assert segmentation_metrics(truth, truth)["dice"] == 1.0


# --- HD95 --------------------------------------------------------------------------------------


def shifted_squares() -> tuple[np.ndarray, np.ndarray]:
    # Two 10x10 squares, the second shifted 3 columns right. Boundary pixels (36 each), distances
    # from one boundary to the other, in pixels: top+bottom rows 14 x 0 and {1, 2, 3} twice; the
    # near side column 8 x 3; the far side column {1, 2, 3, 3, 3, 3, 2, 1}. So 14 zeros, 4 ones,
    # 4 twos, 14 threes: the 95th percentile (rank 0.95 * 35 = 33.25) is 3. Same both ways.
    truth = square((40, 40), slice(10, 20), slice(10, 20))
    pred = square((40, 40), slice(10, 20), slice(13, 23))
    return pred, truth


def test_hd95_of_shifted_squares_in_pixels() -> None:
    pred, truth = shifted_squares()
    assert segmentation_metrics(pred, truth)["hd95"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("spacing", "expected"),
    [
        # rows 2 mm, columns 0.5 mm: the 3-column shift is 1.5 mm and 18 of 36 distances equal it -> 1.5.
        ((2.0, 0.5), 1.5),
        # rows 0.5 mm, columns 2 mm: 3 columns = 6 mm; 10 of 36 distances are 6 mm (> 5% of them) -> 6.
        ((0.5, 2.0), 6.0),
    ],
)
def test_hd95_of_shifted_squares_in_mm(spacing: tuple[float, float], expected: float) -> None:
    pred, truth = shifted_squares()
    assert segmentation_metrics(pred, truth, spacing=spacing)["hd95"] == pytest.approx(expected)


def test_hd95_ignores_a_single_far_outlier() -> None:
    # The prediction is the truth plus one pixel 25 px away: 1 of 37 boundary distances is large, below
    # the top 5%, so HD95 is 0 (the maximum Hausdorff distance would be 25).
    truth = square((64, 64), slice(10, 20), slice(10, 20))
    pred = truth.copy()
    pred[44, 19] = 1
    m = segmentation_metrics(pred, truth)
    assert m["hd95"] == pytest.approx(0.0)
    assert m["dice"] < 1.0


# --- empty masks (the rule in the module docstring) --------------------------------------------


def metrics_without_warnings(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # MONAI warns on empty masks; we must handle them before it sees them
        return segmentation_metrics(pred, truth, spacing=(0.5, 0.5))


def test_both_empty_is_a_perfect_answer() -> None:
    empty = np.zeros((16, 16), np.uint8)
    m = metrics_without_warnings(empty, empty)
    assert {k: m[k] for k in METRIC_NAMES} == {
        "dice": 1.0,
        "iou": 1.0,
        "precision": 1.0,
        "sensitivity": 1.0,
        "specificity": 1.0,
        "accuracy": 1.0,
        "hd95": 0.0,
    }
    assert m["pred_pixels"] == 0 and m["true_pixels"] == 0


def test_empty_truth_with_false_positives() -> None:
    empty = np.zeros((16, 16), np.uint8)
    pred = square((16, 16), slice(2, 4), slice(2, 4))  # 4 false positives
    m = metrics_without_warnings(pred, empty)
    assert m["dice"] == 0.0 and m["iou"] == 0.0
    assert m["precision"] == 0.0  # 0 / 4: every claimed pixel is wrong
    assert math.isnan(m["sensitivity"])  # 0 / 0: nothing to find, undefined rather than a flattering 1
    # No truth boundary to measure against: the worst distance, the diagonal of 16 x 16 pixels of 0.5 mm.
    assert m["hd95"] == pytest.approx(math.hypot(8.0, 8.0))
    assert m["false_positive_components"] == 1 and m["lesions"] == 0
    assert m["specificity"] == pytest.approx(252 / 256)
    assert m["accuracy"] == pytest.approx(252 / 256)


def test_missed_tumor_with_empty_prediction() -> None:
    empty = np.zeros((16, 16), np.uint8)
    truth = square((16, 16), slice(2, 4), slice(2, 4))
    m = metrics_without_warnings(empty, truth)
    assert m["dice"] == 0.0 and m["iou"] == 0.0
    assert m["sensitivity"] == 0.0  # 0 / 4: the tumor was missed
    assert math.isnan(m["precision"])  # 0 / 0: nothing claimed, undefined
    assert m["hd95"] == pytest.approx(math.hypot(8.0, 8.0))
    assert (m["lesions"], m["lesions_detected"], m["lesions_missed"]) == (1, 0, 1)
    assert m["specificity"] == 1.0
    assert m["accuracy"] == pytest.approx(252 / 256)


def test_a_model_that_misses_the_tumor_scores_a_worse_hd95_than_one_that_finds_it() -> None:
    truth = square((64, 64), slice(20, 40), slice(20, 40))
    found = square((64, 64), slice(22, 44), slice(18, 38))  # off by a few pixels
    missed = np.zeros_like(truth)
    rows = [segmentation_metrics(found, truth), segmentation_metrics(missed, truth)]
    assert rows[0]["hd95"] < rows[1]["hd95"] == pytest.approx(math.hypot(64, 64))
    summary = summarize([rows[1], rows[1], rows[0]])
    assert summary["hd95_nan"] == 0, "every case counts in the mean"


def test_worst_distance_is_the_brats_diagonal() -> None:
    assert worst_distance((155, 240, 240), (1.0, 1.0, 1.0)) == pytest.approx(373.13, abs=0.01)
    assert worst_distance((3, 4)) == pytest.approx(5.0)


def test_lesion_counts_detected_missed_and_false_positive_components() -> None:
    truth = np.zeros((32, 32), np.uint8)
    truth[2:6, 2:6] = 1  # lesion 1, found
    truth[20:24, 20:24] = 1  # lesion 2, missed
    pred = np.zeros_like(truth)
    pred[4:8, 4:8] = 1  # overlaps lesion 1
    pred[10:12, 25:28] = 1  # touches nothing
    counts = lesion_counts(pred, truth)
    assert counts == {"lesions": 2, "lesions_detected": 1, "lesions_missed": 1, "false_positive_components": 1}
    volume = np.zeros((3, 8, 8), np.uint8)
    volume[0, 0, 0] = volume[1, 1, 1] = 1  # diagonal neighbours across slices: one 3D lesion
    assert lesion_counts(volume, volume)["lesions"] == 1


def test_exact_match_is_perfect_even_where_a_ratio_is_0_over_0() -> None:
    full = np.ones((8, 8), np.uint8)  # no negatives: specificity would be 0/0
    m = segmentation_metrics(full, full)
    assert m["specificity"] == 1.0 and m["hd95"] == 0.0


def test_results_are_json_serialisable() -> None:
    pred, truth = shifted_squares()
    json.dumps(segmentation_metrics(pred, truth))


# --- bad input ---------------------------------------------------------------------------------


def test_rejects_probabilities() -> None:
    truth = square((10, 10), slice(2, 6), slice(2, 6))
    with pytest.raises(ValueError, match="binary"):
        segmentation_metrics(truth * 0.7, truth)


def test_rejects_shape_mismatch_and_bad_spacing() -> None:
    truth = square((10, 10), slice(2, 6), slice(2, 6))
    with pytest.raises(ValueError, match="same shape"):
        segmentation_metrics(truth[:, :9], truth)
    with pytest.raises(ValueError, match="one value per axis"):
        segmentation_metrics(truth, truth, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        segmentation_metrics(truth, truth, spacing=(1.0, 0.0))
    with pytest.raises(ValueError, match=r"2D \(H, W\) or 3D"):
        segmentation_metrics(truth[0], truth[0])


# --- volumes -----------------------------------------------------------------------------------


def anisotropic_volumes() -> tuple[np.ndarray, np.ndarray]:
    # Truth: the 3x3 square (rows/cols 2-4) on slices 1-2 (18 voxels, all on the boundary).
    # Prediction: the same square on slices 1-3 (27 voxels; its boundary is all but the centre voxel).
    truth = square((5, 8, 8), slice(2, 5), slice(2, 5), slices=slice(1, 3))
    pred = square((5, 8, 8), slice(2, 5), slice(2, 5), slices=slice(1, 4))
    return pred, truth


def test_volume_hd95_uses_anisotropic_spacing() -> None:
    # Spacing (slice 5 mm, rows 0.5, cols 0.5). Prediction -> truth: the 9 voxels of the extra slice 3 are
    # one slice (5 mm) from the truth, 17 boundary voxels are at 0: rank 0.95 * 25 = 23.75 falls among the
    # 5s -> 5 mm. Truth -> prediction: 17 zeros and the slice-2 centre voxel at 0.5 mm (rank 16.15 ->
    # 0.15 * 0.5). HD95 = max = 5 mm. Axes reversed (0.5, 0.5, 5): the extra slice is 0.5 mm away -> 0.5; in voxels 1.
    pred, truth = anisotropic_volumes()
    assert volume_metrics(pred, truth, spacing=(5.0, 0.5, 0.5))["hd95"] == pytest.approx(5.0)
    assert volume_metrics(pred, truth, spacing=(0.5, 0.5, 5.0))["hd95"] == pytest.approx(0.5)
    assert segmentation_metrics(pred, truth)["hd95"] == pytest.approx(1.0)


def test_volume_metrics_counts_and_volumes() -> None:
    pred, truth = anisotropic_volumes()
    m = volume_metrics(pred, truth, spacing=(5.0, 0.5, 0.5))
    voxel_ml = 5.0 * 0.5 * 0.5 / 1000
    assert m["dice"] == pytest.approx(2 * 18 / (27 + 18))
    assert m["sensitivity"] == 1.0 and m["precision"] == pytest.approx(18 / 27)
    assert m["pred_volume_ml"] == pytest.approx(27 * voxel_ml)
    assert m["true_volume_ml"] == pytest.approx(18 * voxel_ml)
    assert m["volume_difference_ml"] == pytest.approx(9 * voxel_ml)


def test_volume_metrics_accepts_a_list_of_slices() -> None:
    pred, truth = anisotropic_volumes()
    assert volume_metrics(list(pred), list(truth), spacing=(5.0, 0.5, 0.5)) == volume_metrics(
        pred, truth, spacing=(5.0, 0.5, 0.5)
    )


def test_volume_metrics_requires_3d_and_3_spacings() -> None:
    pred, truth = anisotropic_volumes()
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        volume_metrics(pred[0], truth[0], spacing=(5.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="one value per axis"):
        volume_metrics(pred, truth, spacing=(0.5, 0.5))


# --- pooled Dice -------------------------------------------------------------------------------


def test_aggregate_dice_differs_from_mean_dice() -> None:
    # Image A: truth 10x10, prediction shifted one row: overlap 90, Dice 0.9.
    # Image B: a 2x2 tumor missed entirely: Dice 0. Mean Dice 0.45; pooled 2*90 / (100 + 104).
    truth_a = square((32, 32), slice(5, 15), slice(5, 15))
    pred_a = square((32, 32), slice(6, 16), slice(5, 15))
    truth_b = square((32, 32), slice(5, 7), slice(5, 7))
    pred_b = np.zeros((32, 32), np.uint8)
    per_image = [segmentation_metrics(pred_a, truth_a)["dice"], segmentation_metrics(pred_b, truth_b)["dice"]]
    assert np.mean(per_image) == pytest.approx(0.45)
    assert aggregate_dice([pred_a, pred_b], [truth_a, truth_b]) == pytest.approx(180 / 204)
    assert aggregate_dice((p for p in [pred_a, pred_b]), iter([truth_a, truth_b])) == pytest.approx(180 / 204)


def test_aggregate_dice_edge_cases() -> None:
    empty = np.zeros((8, 8), np.uint8)
    assert aggregate_dice([empty, empty], [empty, empty]) == 1.0
    with pytest.raises(ValueError, match="more predictions"):
        aggregate_dice([empty, empty], [empty])
    with pytest.raises(ValueError, match="more truths"):
        aggregate_dice([empty], [empty, empty])
    with pytest.raises(ValueError, match="at least one"):
        aggregate_dice([], [])


# --- summary -----------------------------------------------------------------------------------


def test_summarize_leaves_out_and_counts_nan() -> None:
    cases = [
        {"case_id": "a", "dice": 1.0, "hd95": 0.0, "pred_pixels": 0},
        {"case_id": "b", "dice": 0.5, "hd95": math.nan, "pred_pixels": 10},
        {"case_id": "c", "dice": 0.0, "hd95": 4.0, "pred_pixels": 20},
    ]
    s = summarize(cases)
    assert s["cases"] == 3
    assert s["dice_mean"] == pytest.approx(0.5)
    assert s["dice_std"] == pytest.approx(0.5)  # sample std: sqrt((0.25 + 0 + 0.25) / 2)
    assert s["dice_median"] == pytest.approx(0.5)
    assert (s["dice_n"], s["dice_nan"]) == (3, 0)
    assert s["hd95_mean"] == pytest.approx(2.0)  # nan left out, not counted as 0
    assert s["hd95_std"] == pytest.approx(math.sqrt(8.0))
    assert s["hd95_median"] == pytest.approx(2.0)
    assert (s["hd95_n"], s["hd95_nan"]) == (2, 1)
    assert s["pred_pixels_mean"] == pytest.approx(10.0)
    assert not any(key.startswith("case_id") for key in s)
    json.dumps(s)


def test_summarize_all_nan_single_value_and_empty() -> None:
    s = summarize([{"hd95": math.nan, "dice": 0.7}, {"hd95": math.nan}])
    assert math.isnan(s["hd95_mean"]) and (s["hd95_n"], s["hd95_nan"]) == (0, 2)
    assert s["dice_mean"] == pytest.approx(0.7) and math.isnan(s["dice_std"]) and s["dice_nan"] == 1  # missing counts as nan
    with pytest.raises(ValueError, match="at least one"):
        summarize([])


def test_summarize_of_real_metrics_end_to_end() -> None:
    empty = np.zeros((16, 16), np.uint8)
    tumor = square((16, 16), slice(2, 6), slice(2, 6))
    s = summarize([segmentation_metrics(empty, empty), segmentation_metrics(tumor, tumor), segmentation_metrics(empty, tumor)])
    assert s["dice_mean"] == pytest.approx(2 / 3)
    assert (s["hd95_n"], s["hd95_nan"]) == (3, 0)  # the missed tumor counts, at the worst distance
    assert s["hd95_mean"] == pytest.approx(math.hypot(16, 16) / 3)
    assert (s["precision_n"], s["precision_nan"]) == (2, 1)
    assert s["sensitivity_mean"] == pytest.approx(2 / 3)
