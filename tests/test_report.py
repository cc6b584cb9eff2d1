"""seg_core.report: the downloadable figures of a segmentation, as JSON and CSV."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from seg_core.inference import Prediction
from seg_core.report import DISCLAIMER, prediction_report, report_csv
from seg_core.samples import load_sample


def oracle(mask: np.ndarray, seconds: float = 0.25) -> Prediction:
    return Prediction(mask.astype(np.float32), mask.astype(np.uint8), {}, "oracle.test", seconds, {"threshold": 0.5})


def test_volume_report_in_mm_and_ml_with_metrics_against_truth() -> None:
    scan, truth = load_sample("phantom-3d")
    shifted = np.roll(truth, 2, axis=2)
    report = prediction_report(scan, oracle(shifted), truth)
    assert report["disclaimer"] == DISCLAIMER and report["units"] == "mm"
    voxel_ml = float(np.prod(scan.spacing)) / 1000
    assert report["volume_ml"] == pytest.approx(int(shifted.sum()) * voxel_ml)
    assert report["slices_with_tumor"] == int(shifted.any(axis=(1, 2)).sum())
    assert len(report["per_slice"]) == scan.num_slices
    assert 0 < report["metrics"]["dice"] < 1 and report["metrics"]["hd95"] > 0
    json.dumps(report, allow_nan=False)  # strict JSON: no nan or numpy types


def test_2d_png_report_is_in_pixels_without_volume() -> None:
    scan, truth = load_sample("phantom-2d")
    assert not scan.spacing_known
    report = prediction_report(scan, oracle(truth))
    assert report["units"] == "pixels" and report["volume_ml"] is None and "metrics" not in report
    assert report["largest_slice_area"] == report["tumor_pixels"] == int(truth.sum())


def test_csv_has_summary_rows_then_one_row_per_slice() -> None:
    scan, truth = load_sample("phantom-3d")
    report = prediction_report(scan, oracle(truth), truth)
    rows = list(csv.reader(io.StringIO(report_csv(report))))
    fields = {row[0]: row[1] for row in rows if len(row) == 2}
    assert fields["model"] == "oracle.test" and float(fields["metric_dice"]) == 1.0
    header = rows.index(["slice", "tumor", "area_mm2"])
    assert len(rows) - header - 1 == scan.num_slices


def test_truth_of_another_shape_is_refused() -> None:
    scan, truth = load_sample("phantom-2d")
    with pytest.raises(ValueError, match="differs"):
        prediction_report(scan, oracle(truth), truth[:, :10])


def test_report_tables_are_dataframes_with_the_csv_columns() -> None:
    from seg_core.report import report_tables

    scan, truth = load_sample("phantom-3d")
    summary, per_slice = report_tables(prediction_report(scan, oracle(truth), truth))
    assert list(summary.columns) == ["field", "value"] and list(per_slice.columns) == ["slice", "tumor", "area_mm2"]
    values = dict(zip(summary["field"], summary["value"], strict=True))
    assert values["model"] == "oracle.test" and values["metric_dice"] == 1.0 and values["tumor_present"] is True
    assert len(per_slice) == scan.num_slices and set(per_slice["tumor"]) <= {0, 1}
