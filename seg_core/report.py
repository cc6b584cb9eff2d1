"""A segmentation's figures as a report: one JSON-ready dict, and the same as CSV.

What the app offers for download next to the mask, and what a script can archive with it: the scan,
the model and its post-processing, the tumor's size (mm^2 / mL, or pixels when the file records no
spacing), the slices with tumor, the time taken and, when a ground-truth mask is known, the overlap
figures from :func:`seg_core.metrics.segmentation_metrics`.

Example:
    >>> from seg_core.samples import load_sample
    >>> from seg_core.inference import Prediction
    >>> scan, truth = load_sample("phantom-2d")
    >>> prediction = Prediction(truth.astype("float32"), truth, {}, "oracle", 0.01)
    >>> report = prediction_report(scan, prediction, truth)
    >>> report["metrics"]["dice"]
    1.0
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from seg_core.postprocess import tumor_size

if TYPE_CHECKING:
    import pandas as pd

    from seg_core.inference import Prediction
    from seg_core.scans import Scan

__all__ = ["DISCLAIMER", "prediction_report", "report_csv", "report_tables"]

DISCLAIMER = "Research and teaching only: not a medical device, not for diagnosis or treatment."


def _number(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def prediction_report(scan: Scan, prediction: Prediction, truth: np.ndarray | None = None) -> dict[str, Any]:
    """The figures of ``prediction`` on ``scan`` (and against ``truth``, ``(D, H, W)``, when given).

    Sizes are recomputed from the mask with the scan's spacing, so they always match the mask.
    ``units`` says whether areas are mm^2 or pixels (2D files without a recorded pixel size).
    """
    sizes = tumor_size(prediction.mask, scan.spacing)
    spacing_known = scan.spacing_known
    report: dict[str, Any] = {
        "disclaimer": DISCLAIMER,
        "scan": {
            "name": scan.name,
            "format": scan.source_format,
            "shape_dhw": list(scan.shape),
            "modalities": list(scan.modalities),
            "spacing_mm": [float(s) for s in scan.spacing] if spacing_known else None,
        },
        "model": prediction.model_id,
        "postprocessing": dict(prediction.postprocessing),
        "seconds": round(float(prediction.seconds), 4),
        "units": "mm" if spacing_known else "pixels",
        "tumor_present": bool(sizes["pixels"]),
        "tumor_pixels": int(sizes["pixels"]),
        "largest_slice_area": _number(sizes["largest_slice_area_mm2"]),
        "largest_slice_index": int(sizes["largest_slice_index"]),
        "slices_with_tumor": int(sizes["slices_with_tumor"]),
        "volume_ml": _number(sizes["volume_ml"]) if (spacing_known and not scan.is_2d) else None,
        "components": int(sizes["components"]),
        "per_slice": [
            {"slice": index, "tumor": bool(present), "area": _number(area)}
            for index, (present, area) in enumerate(zip(sizes["tumor_present"], sizes["slice_area_mm2"], strict=True))
        ],
    }
    if truth is not None:
        from seg_core.metrics import segmentation_metrics  # MONAI: imported only when there is something to compare

        truth = np.asarray(truth)
        if truth.shape != prediction.mask.shape:
            raise ValueError(f"ground-truth mask shape {truth.shape} differs from the prediction's {prediction.mask.shape}")
        spacing = list(scan.spacing) if spacing_known else None
        metrics = segmentation_metrics(prediction.mask, (truth > 0).astype(np.uint8), spacing)
        report["metrics"] = {key: _number(float(value)) for key, value in metrics.items()}
        report["metrics_units"] = "hd95 in mm" if spacing_known else "hd95 in pixels"
    return report


SUMMARY_FIELDS = (
    "model",
    "seconds",
    "units",
    "tumor_present",
    "tumor_pixels",
    "largest_slice_area",
    "largest_slice_index",
    "slices_with_tumor",
    "volume_ml",
    "components",
)


def _cell(value: Any) -> Any:
    return " x ".join(str(v) for v in value) if isinstance(value, list) else value


def report_tables(report: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The report as two tables: ``field, value`` for the summary, and one row per slice.

    Values keep their Python types (``object`` columns), so a CSV writes them as the JSON shows them.
    """
    # Imported here: every page's frame imports DISCLAIMER from this module before its title shows.
    import pandas as pd

    fields = [("disclaimer", report["disclaimer"])]
    fields += [(f"scan_{key}", _cell(report["scan"][key])) for key in ("name", "format", "shape_dhw", "modalities", "spacing_mm")]
    fields += [(key, report[key]) for key in SUMMARY_FIELDS]
    fields += [(f"postprocessing_{key}", value) for key, value in report["postprocessing"].items()]
    fields += [(f"metric_{key}", value) for key, value in report.get("metrics", {}).items()]
    summary = pd.DataFrame(fields, columns=["field", "value"], dtype=object)
    area = f"area_{'mm2' if report['units'] == 'mm' else 'px'}"
    per_slice = pd.DataFrame(
        [(row["slice"], int(row["tumor"]), row["area"]) for row in report["per_slice"]],
        columns=["slice", "tumor", area],
        dtype=object,
    )
    return summary, per_slice


def report_csv(report: dict[str, Any]) -> str:
    """The report as CSV: ``field,value`` rows for the summary, a blank line, then one row per slice."""
    summary, per_slice = report_tables(report)
    # csv's line ends, so the file is the same as before pandas wrote it.
    options = {"index": False, "lineterminator": "\r\n", "na_rep": ""}
    return summary.to_csv(**options) + "\r\n" + per_slice.to_csv(**options)
