"""Segmentation metrics per image and per volume, with MONAI's implementations underneath.

All functions take binary masks as numpy arrays, ``(H, W)`` for an image or ``(D, H, W)`` for a
volume, with values in {0, 1} (or bool). Spacing is given in mm per axis in the same order as the
array axes: ``(row, column)`` for an image, ``(slice, row, column)`` for a volume.

Metrics (TP, FP, TN, FN are pixel / voxel counts):

* ``dice`` = 2 TP / (2 TP + FP + FN); ``iou`` = TP / (TP + FP + FN)
* ``precision`` = TP / (TP + FP); ``sensitivity`` = TP / (TP + FN)
* ``specificity`` = TN / (TN + FP); ``accuracy`` = (TP + TN) / all
* ``hd95``: 95th-percentile symmetric Hausdorff distance between the mask boundaries, in mm when a
  spacing is given, in pixels otherwise. As in MONAI, it is the larger of the two directed 95th
  percentiles (prediction -> truth, truth -> prediction), so a few stray pixels do not dominate it.
* ``pred_pixels``, ``true_pixels``: foreground counts (voxels for a volume).

Empty masks. Tumor-free slices are common (most slices of an LGG volume), so the empty cases are
part of the definition, not an afterthought. One rule covers them all:

    A ratio whose denominator is zero (0/0) is ``nan`` -- undefined, as in MONAI's
    ``compute_confusion_matrix_metric`` and nnU-Net -- EXCEPT when the prediction equals the truth
    exactly, where every metric takes its perfect value (the BraTS convention for an empty truth
    with an empty prediction: Dice 1, HD95 0).

=====================================  ====  ====  =========  ===========  ===============
case                                   dice  iou   precision  sensitivity  hd95
=====================================  ====  ====  =========  ===========  ===============
both empty (correct "no tumor")        1     1     1          1            0
truth empty, prediction not (FP only)  0     0     0          nan          worst (diagonal)
truth not empty, prediction empty      0     0     nan        0            worst (diagonal)
=====================================  ====  ====  =========  ===========  ===============

Why ``nan`` rather than a flattering 1 for the metric that cannot see the error: with an empty
truth, sensitivity "has nothing to find", and with an empty prediction, precision "claimed
nothing". Scoring those as 1 would reward a wrong answer and inflate mean sensitivity on datasets
full of tumor-free slices (and mean precision for a model that never predicts tumor). Dice and IoU
stay defined (0) because their denominators include both masks. :func:`summarize` leaves ``nan``
out of means and reports how many were left out (``<metric>_nan``), so undefined values are
counted, never hidden. Specificity follows the same rule (``nan`` only when the truth fills the
whole image and the prediction differs).

HD95 follows the BraTS convention instead: a missed tumor, or a tumor found where there is none,
has no boundary to measure against, and leaving it out of the mean would make the model that
misses most look best. It scores the worst distance there is, the diagonal of the image (or
volume) in mm, in pixels without a spacing (:func:`worst_distance`): 373.13 mm for a
240x240x155 volume of 1 mm voxels, the figure the BraTS toolkits use (they write 373, "the
diameter of the SRI atlas"). So HD95 is defined for every case and every patient is in its mean.

Lesion-wise counts (:func:`lesion_counts`): the truth's connected lesions and how many of them the
prediction touches, and the prediction's connected components that touch no lesion (false
positives), as the BraTS 2023 lesion-wise evaluation counts them.

Per-image mean Dice vs pooled Dice: :func:`summarize` averages per-image Dice, giving every image
the same weight (an empty slice answered correctly counts 1, a missed 20-pixel tumor counts 0);
:func:`aggregate_dice` pools TP/FP/FN over all images first, so large tumors dominate and empty
slices count for nothing. Papers report either; the two can differ by many points, so say which.

Example:
    >>> import numpy as np
    >>> truth = np.zeros((8, 8), np.uint8); truth[2:6, 2:6] = 1
    >>> pred = np.zeros((8, 8), np.uint8); pred[2:6, 3:7] = 1
    >>> round(segmentation_metrics(pred, truth)["dice"], 3)
    0.75
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_confusion_matrix_metric, compute_hausdorff_distance, get_confusion_matrix

__all__ = [
    "METRIC_NAMES",
    "worst_distance",
    "lesion_counts",
    "segmentation_metrics",
    "volume_metrics",
    "aggregate_dice",
    "summarize",
]

logger = logging.getLogger(__name__)

#: The ratio metrics returned by :func:`segmentation_metrics`, in order (counts follow them).
METRIC_NAMES: tuple[str, ...] = ("dice", "iou", "precision", "sensitivity", "specificity", "accuracy", "hd95")

# MONAI's names for the confusion-matrix metrics. Dice is MONAI's "f1 score" and IoU its "threat
# score" (same formulas as compute_dice / compute_iou, checked in the tests): one confusion matrix
# then gives all six ratios from a single pass over the mask instead of three.
_MONAI_NAMES = {
    "dice": "f1 score",
    "iou": "threat score",
    "precision": "precision",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "accuracy": "accuracy",
}


def _as_binary(mask: Any, name: str) -> np.ndarray:
    """Checks a mask is 2D/3D and binary; returns it as bool."""
    array = np.asarray(mask)
    if array.ndim not in (2, 3):
        raise ValueError(f"{name} must be 2D (H, W) or 3D (D, H, W), got shape {array.shape}")
    if array.dtype == bool:
        return array
    # A probability map passed by mistake would otherwise be silently binarised by `== 1`.
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name} must be binary (values 0 and 1 only); threshold probabilities first (see seg_core.postprocess)")
    return array.astype(bool)


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> list[float] | None:
    """Returns spacing as a list of floats (MONAI requires one element type), or None."""
    if spacing is None:
        return None
    values = [float(s) for s in spacing]
    if len(values) != ndim:
        raise ValueError(f"spacing needs one value per axis ({ndim} for a {ndim}D mask), got {tuple(spacing)}")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be positive mm per axis, got {tuple(spacing)}")
    return values


def _as_tensor(mask: np.ndarray) -> torch.Tensor:
    """A bool mask as the ``(B=1, C=1, *spatial)`` uint8 tensor MONAI's metrics expect (contiguous copy)."""
    return torch.from_numpy(np.ascontiguousarray(mask, dtype=np.uint8))[None, None]


def _hd95(prediction: np.ndarray, truth: np.ndarray, spacing: list[float] | None) -> float:
    """95th-percentile Hausdorff distance via MONAI (KD-tree over boundary pixels: ~ms for 256x256).

    Empty masks are handled by the caller: MONAI warns on them and returns inf/nan.
    """
    with warnings.catch_warnings():
        # MONAI 1.6 passes its own deprecated `always_return_as_numpy` argument internally: not ours to fix.
        warnings.simplefilter("ignore", FutureWarning)
        distance = compute_hausdorff_distance(
            _as_tensor(prediction), _as_tensor(truth), include_background=True, percentile=95, spacing=spacing
        )
    return float(distance.item())


def worst_distance(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """The diagonal of an image or volume of ``shape`` voxels of ``spacing`` mm: the HD95 of a missed tumor.

    >>> round(worst_distance((155, 240, 240), (1.0, 1.0, 1.0)), 2)
    373.13
    """
    sizes = [n * (1.0 if spacing is None else float(s)) for n, s in zip(shape, spacing or [1.0] * len(shape), strict=True)]
    return float(math.sqrt(sum(size * size for size in sizes)))


def lesion_counts(prediction: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Connected lesions of the truth, how many the prediction touches, and predicted components touching none.

    Connectivity is full (8 neighbours in 2D, 26 in 3D). Returns ``lesions``, ``lesions_detected``,
    ``lesions_missed`` and ``false_positive_components``.
    """
    from scipy import ndimage

    pred, true = np.asarray(prediction, bool), np.asarray(truth, bool)
    structure = np.ones((3,) * true.ndim, dtype=bool)
    true_labels, lesions = ndimage.label(true, structure=structure)
    pred_labels, components = ndimage.label(pred, structure=structure)
    detected = len(np.unique(true_labels[pred & true]))
    touching = len(np.unique(pred_labels[pred & true]))
    return {
        "lesions": int(lesions),
        "lesions_detected": int(detected),
        "lesions_missed": int(lesions - detected),
        "false_positive_components": int(components - touching),
    }


def segmentation_metrics(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None) -> dict[str, float]:
    """Overlap and distance metrics of one binary mask against its ground truth.

    Args:
        prediction: predicted mask ``(H, W)`` or ``(D, H, W)``, values in {0, 1}.
        truth: ground-truth mask of the same shape.
        spacing: mm per axis, same order as the array axes (``(row, col)`` or ``(slice, row, col)``).
            ``None``: 1 per axis, so ``hd95`` is in pixels.

    Returns:
        ``dice``, ``iou``, ``precision``, ``sensitivity``, ``specificity``, ``accuracy`` (0..1),
        ``hd95`` (mm, or pixels without spacing; the image diagonal when exactly one mask is empty),
        ``pred_pixels`` and ``true_pixels`` (counts), and the :func:`lesion_counts`.
        Empty masks follow the rules in the module docstring (``nan`` where a ratio is undefined).

    Raises:
        ValueError: for shapes that differ or are not 2D/3D, non-binary masks, or a bad spacing.
    """
    pred = _as_binary(prediction, "prediction")
    true = _as_binary(truth, "truth")
    if pred.shape != true.shape:
        raise ValueError(f"prediction and truth must have the same shape, got {pred.shape} and {true.shape}")
    spacing_list = _check_spacing(spacing, pred.ndim)

    pred_pixels = int(np.count_nonzero(pred))
    true_pixels = int(np.count_nonzero(true))
    counts: dict[str, float] = {"pred_pixels": pred_pixels, "true_pixels": true_pixels, **lesion_counts(pred, true)}
    if np.array_equal(pred, true):
        # Exact match, including both empty: perfect by definition, no 0/0 nan (module docstring).
        return {**dict.fromkeys(_MONAI_NAMES, 1.0), "hd95": 0.0, **counts}

    confusion = get_confusion_matrix(_as_tensor(pred), _as_tensor(true))
    # MONAI returns nan for 0/0 ratios, which is exactly our convention for a wrong answer.
    result = {key: float(compute_confusion_matrix_metric(name, confusion).item()) for key, name in _MONAI_NAMES.items()}
    if pred_pixels and true_pixels:
        result["hd95"] = _hd95(pred, true, spacing_list)
    else:  # a missed tumor, or one where there is none: the worst distance (BraTS convention)
        result["hd95"] = worst_distance(pred.shape, spacing_list)
    return {**result, **counts}


def volume_metrics(
    prediction: np.ndarray | Sequence[np.ndarray],
    truth: np.ndarray | Sequence[np.ndarray],
    spacing: Sequence[float],
) -> dict[str, float]:
    """Per-volume metrics of a stack of slices, with HD95 measured in 3D.

    Slices are stacked along the first axis, so a patient's 2D predictions can be passed as a list.
    HD95 uses the anisotropic voxel spacing, so a boundary one slice off counts the slice thickness.

    Args:
        prediction: predicted mask ``(D, H, W)``, or a sequence of D ``(H, W)`` slices, in {0, 1}.
        truth: ground truth, same shape.
        spacing: voxel size ``(slice thickness, row, column)`` in mm.

    Returns:
        Everything :func:`segmentation_metrics` returns (``hd95`` in mm, counts in voxels), plus
        ``pred_volume_ml``, ``true_volume_ml`` and ``volume_difference_ml`` (prediction minus truth).

    Raises:
        ValueError: for non-3D or mismatched masks, non-binary values, or a spacing that is not 3 positive numbers.
    """
    pred = np.asarray(prediction) if isinstance(prediction, np.ndarray) else np.stack(list(prediction))
    true = np.asarray(truth) if isinstance(truth, np.ndarray) else np.stack(list(truth))
    if pred.ndim != 3 or true.ndim != 3:
        raise ValueError(
            f"volume_metrics needs (D, H, W) volumes or lists of (H, W) slices, got shapes {pred.shape} and {true.shape}"
        )
    spacing_list = _check_spacing(spacing, 3)
    result = segmentation_metrics(pred, true, spacing_list)
    voxel_ml = float(np.prod(spacing_list)) / 1000.0  # mm^3 -> mL
    result["pred_volume_ml"] = result["pred_pixels"] * voxel_ml
    result["true_volume_ml"] = result["true_pixels"] * voxel_ml
    result["volume_difference_ml"] = result["pred_volume_ml"] - result["true_volume_ml"]
    return result


def aggregate_dice(predictions: Iterable[np.ndarray], truths: Iterable[np.ndarray]) -> float:
    """Pooled (global) Dice over many images: 2 sum(TP) / (sum(|pred|) + sum(|truth|)).

    Unlike the mean of per-image Dice, every pixel weighs the same, so large tumors dominate and
    tumor-free slices only count through their false positives. Report which of the two you use.

    Args:
        predictions: binary masks, each ``(H, W)`` or ``(D, H, W)``; consumed once, so a generator works.
        truths: ground truths, same count and shapes, in the same order.

    Returns:
        The pooled Dice in 0..1; 1.0 when every mask is empty (an exact match, as in the module rule).

    Raises:
        ValueError: when the two sequences differ in length, or a pair in shape, or a mask is not binary.
    """
    # Plain counting rather than MONAI: MONAI's Dice is per image (its "global" reductions average
    # per-image scores), and pooling the counts is all this needs.
    overlap = pred_total = true_total = 0
    sentinel = object()
    pairs = 0
    truth_iter = iter(truths)
    for prediction in predictions:
        truth = next(truth_iter, sentinel)
        if truth is sentinel:
            raise ValueError(f"more predictions than truths (truths ran out after {pairs})")
        pred = _as_binary(prediction, "prediction")
        true = _as_binary(truth, "truth")
        if pred.shape != true.shape:
            raise ValueError(f"pair {pairs}: prediction and truth shapes differ: {pred.shape} vs {true.shape}")
        overlap += int(np.count_nonzero(pred & true))
        pred_total += int(np.count_nonzero(pred))
        true_total += int(np.count_nonzero(true))
        pairs += 1
    if next(truth_iter, sentinel) is not sentinel:
        raise ValueError(f"more truths than predictions (predictions ran out after {pairs})")
    if pairs == 0:
        raise ValueError("aggregate_dice needs at least one prediction/truth pair")
    denominator = pred_total + true_total
    return 1.0 if denominator == 0 else 2.0 * overlap / denominator


def batch_dice(predicted: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Dice of each image of boolean batches ``(B, ...)``: the fast path for training and selection.

    Same convention as :func:`segmentation_metrics` (1.0 when both masks are empty), without the
    HD95 and confusion-matrix work, so it can run every epoch.
    """
    predicted, truth = predicted.bool().flatten(1), truth.bool().flatten(1)
    intersection = (predicted & truth).sum(1).float()
    total = predicted.sum(1).float() + truth.sum(1).float()
    return torch.where(total > 0, 2 * intersection / total.clamp(min=1), torch.ones_like(total))


def summarize(per_case: list[dict[str, Any]]) -> dict[str, float]:
    """Mean, standard deviation, median and counts of each numeric metric over cases, ignoring nan.

    Args:
        per_case: one dict per image or volume, as returned by :func:`segmentation_metrics`.
            Non-numeric values (case ids, bools) are skipped; a metric missing from a case counts as nan.

    Returns:
        A flat dict (ready for a table or JSON) with, for each metric ``m`` in first-seen order:
        ``m_mean``, ``m_std`` (sample standard deviation, ddof=1; nan with fewer than 2 values),
        ``m_median``, ``m_n`` (values used) and ``m_nan`` (nan values left out); plus ``cases``.
        Statistics of a metric with no finite value are nan.

    Raises:
        ValueError: when ``per_case`` is empty.
    """
    if not per_case:
        raise ValueError("summarize needs at least one case")
    keys: list[str] = []
    for case in per_case:
        for key, value in case.items():
            numeric = isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)
            if numeric and key not in keys:
                keys.append(key)

    summary: dict[str, float] = {"cases": len(per_case)}
    for key in keys:
        values = np.array([float(case.get(key, math.nan)) for case in per_case], dtype=np.float64)
        kept = values[~np.isnan(values)]
        n = int(kept.size)
        summary[f"{key}_mean"] = float(kept.mean()) if n else math.nan
        summary[f"{key}_std"] = float(kept.std(ddof=1)) if n >= 2 else math.nan
        summary[f"{key}_median"] = float(np.median(kept)) if n else math.nan
        summary[f"{key}_n"] = n
        summary[f"{key}_nan"] = len(per_case) - n
    if any(summary.get(f"{key}_nan", 0) for key in METRIC_NAMES):
        logger.debug("summarize: nan left out: %s", {k: summary[f"{k}_nan"] for k in METRIC_NAMES if f"{k}_nan" in summary})
    return summary
