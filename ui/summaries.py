"""What the pages say about a prediction, in the units the scan allows (mm² and mL, or pixels and voxels).

A file that records no pixel size (most PNG slices) is measured in pixels; these helpers pick the unit
so that no page has to.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from seg_core.inference import Prediction
from seg_core.report import prediction_report
from seg_core.scans import Scan
from seg_core.visualize import tumor_profile
from ui.cache import memo
from ui.state import ActiveScan


def cached_report(active: ActiveScan, prediction: Prediction, truth: np.ndarray | None = None) -> dict[str, Any]:
    """:func:`seg_core.report.prediction_report` of the scan's prediction, against ``truth`` when given.

    Computed once per model, setting and truth: HD95 against the truth takes a while on a volume.
    """
    settings = json.dumps(prediction.postprocessing, sort_keys=True)
    truth_digest = None if truth is None else hashlib.sha256(np.ascontiguousarray(truth).tobytes()).hexdigest()
    return memo(
        ("report", active.key, prediction.model_id, settings, truth_digest),
        lambda: prediction_report(active.scan, prediction, truth),
    )


def slice_profile(scan: Scan, prediction: Prediction, plane: str) -> tuple[np.ndarray, str]:
    """Tumor per slice of ``plane`` and its unit: axial areas in mm² (px without spacing), else voxel counts."""
    if plane == "axial":
        return tumor_profile(prediction.mask, plane, prediction.sizes["slice_area_mm2"]), ("mm²" if scan.spacing_known else "px")
    return tumor_profile(prediction.mask, plane), "voxels"


def size_metrics(scan: Scan, report: dict[str, Any], seconds: float, backend: str = "") -> list[tuple[str, str]]:
    """``(label, value)`` of the Segment page's figures, from :func:`seg_core.report.prediction_report`.

    ``backend``: where the model ran (:mod:`seg_core.backends`), shown beside the time it took.
    """
    figures = [("Tumor found", "yes" if report["tumor_present"] else "no")]
    if scan.is_2d:
        area = report["largest_slice_area"]
        figures.append(("Tumor area", f"{area:.1f} mm²" if scan.spacing_known else f"{report['tumor_pixels']} px"))
    else:
        volume = report["volume_ml"]
        figures.append(("Tumor volume", f"{volume:.2f} mL" if volume is not None else f"{report['tumor_pixels']} voxels"))
        figures.append(("Slices with tumor", f"{report['slices_with_tumor']} of {scan.num_slices}"))
    figures.append(("Separate regions", str(report["components"])))
    took = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"  # "18.5 s", not "18486 ms"
    # Where it ran goes in the label: a metric's value is cut off past a dozen characters.
    figures.append((f"Time, on {backend}" if backend else "Time", took))
    return figures


def truth_line(scan: Scan, report: dict[str, Any]) -> str | None:
    """Dice, IoU and HD95 against the ground truth in one Markdown line, or None without a truth."""
    if "metrics" not in report:
        return None
    figures = report["metrics"]
    hd95 = figures.get("hd95")
    return (
        f"**Against the ground truth:** Dice {figures['dice']:.3f} · IoU {figures['iou']:.3f} · "
        f"HD95 {'n/a' if hd95 is None else f'{hd95:.1f}'} {'mm' if scan.spacing_known else 'px'}"
    )


def size_caption(scan: Scan, prediction: Prediction) -> str:
    """A short caption for a model's mask: tumor area or volume, and the time the model took."""
    sizes = prediction.sizes
    if scan.is_2d:
        size = f"{sizes['largest_slice_area_mm2']:.0f} mm²" if scan.spacing_known else f"{sizes['pixels']} px"
    else:
        size = f"{sizes['volume_ml']:.2f} mL"
    return f"tumor {size} · {prediction.seconds * 1000:.0f} ms on this scan ({prediction.backend})"
