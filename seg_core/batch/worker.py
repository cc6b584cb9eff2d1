"""The work of one (case, model) pair: read the scan, segment, write the mask, measure.

Everything here is the library's single-scan path (:func:`seg_core.scans.load_scan`,
:class:`seg_core.inference.Segmenter`, :func:`seg_core.scans.save_mask`, :mod:`seg_core.metrics`),
so a cohort's rows equal what ``seg_core segment`` and the app give for each scan.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_core.batch.cases import file_suffix, safe_name
from seg_core.batch.results import write_atomic
from seg_core.batch.runner import one_line

#: Metric columns a row gets when the case has ground truth (``seg_core.metrics`` names them).
METRIC_COLUMNS = ("dice", "iou", "hd95", "precision", "sensitivity", "specificity", "pred_pixels", "true_pixels")


def model_sha256(model: str, weights_dir: str | Path | None = None) -> str:
    """sha256 of a weights folder's ``model.safetensors`` and ``config.json``: what decides its masks.

    The config counts too: ``select`` rewrites its threshold and post-processing, which change the
    masks of the same tensors.

    Raises:
        WeightsError / KeyError: the id names no weights (before any case is read).
    """
    from seg_core.weights import WEIGHTS_DIR, resolve_weights
    from seg_core.weights.integrity import sha256_file

    folder = resolve_weights(model, weights_dir or WEIGHTS_DIR)
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        path = folder / name
        digest.update(name.encode() + b"\0" + (sha256_file(path).encode() if path.exists() else b"absent"))
    return digest.hexdigest()


def mask_path(model: str, case: str, is_2d: bool) -> str:
    """Where a mask goes, relative to the output folder: ``masks/<model>/<case>.nii.gz`` or ``.png``."""
    return f"masks/{safe_name(model)}/{safe_name(case)}{'.png' if is_2d else '.nii.gz'}"


def _truth(scan, truth_file: str | None) -> np.ndarray | None:
    """Whole-tumor ground truth ``(D, H, W)`` uint8: a separate file beside the scan, else the scan's own label."""
    from seg_core.scans import ScanError, load_scan

    if truth_file is None:
        return None if scan.label is None else (np.asarray(scan.label) > 0).astype(np.uint8)
    # Read under a neutral name: the readers refuse a lone "*_mask.png" as a scan (it is usually a mistake).
    truth = load_scan(Path(truth_file).read_bytes(), name=f"truth{file_suffix(Path(truth_file))}")
    mask = (truth.array.max(axis=0) > 0).astype(np.uint8)
    if mask.shape != scan.shape:
        raise ScanError(
            f"ground truth {Path(truth_file).name} is {mask.shape[0]}x{mask.shape[1]}x{mask.shape[2]}, "
            f"the scan {scan.shape[0]}x{scan.shape[1]}x{scan.shape[2]} (slices x rows x columns)"
        )
    return mask


class CohortWorker:
    """Holds one :class:`~seg_core.inference.Segmenter` per model, and segments one case with each of them."""

    def __init__(self, models: tuple[str, ...], out_dir: str, backend: str, weights_dir: str | None) -> None:
        from seg_core.inference import Segmenter
        from seg_core.weights import WEIGHTS_DIR, load_model

        self.out_dir = Path(out_dir)
        self.segmenters = {m: Segmenter(load_model(m, weights_dir or WEIGHTS_DIR), backend=backend) for m in models}

    def __call__(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows of one case for each model ``payload["rows"]`` names; a model that fails gets an error row.

        A scan that cannot be read raises, and :func:`~seg_core.batch.runner.run_task` gives every
        model its error row.
        """
        from seg_core.scans import load_scan

        case = payload["case"]
        paths = case["paths"]
        scan = load_scan(paths[0] if len(paths) == 1 else list(paths))
        truth = _truth(scan, case["truth"])
        rows = []
        for base in payload["rows"]:
            try:
                rows.append(self._segment(scan, truth, case["name"], base))
            except Exception as error:  # e.g. a model needing a sequence this scan lacks: the others go on
                rows.append({**base, "status": "error", "error": one_line(error)})
        return rows

    def _segment(self, scan, truth: np.ndarray | None, case: str, base: dict[str, Any]) -> dict[str, Any]:
        from seg_core.metrics import segmentation_metrics, volume_metrics
        from seg_core.scans import save_mask

        model = base["model"]
        prediction = self.segmenters[model](scan)
        relative = mask_path(model, case, scan.is_2d)
        write_atomic(self.out_dir, relative, save_mask(scan, prediction.mask, fmt="png" if scan.is_2d else "nifti"))
        row: dict[str, Any] = {
            **base,
            "status": "ok",
            "error": "",
            "kind": "slice" if scan.is_2d else "volume",
            "tumor_volume_ml": None if scan.is_2d else float(prediction.sizes["volume_ml"]),
            "tumor_area_px": int(prediction.mask.sum()) if scan.is_2d else None,
            "spacing_known": scan.spacing_known,
            "seconds": round(float(prediction.seconds), 4),
            "backend": prediction.backend,
            "mask": relative,
            "has_truth": truth is not None,
        }
        if truth is not None:
            if scan.is_2d:
                spacing = scan.spacing[1:] if scan.spacing_known else None
                figures = segmentation_metrics(prediction.mask[0], truth[0], spacing=spacing)
            else:
                figures = volume_metrics(prediction.mask, truth, spacing=scan.spacing)
            row.update({name: figures[name] for name in METRIC_COLUMNS})
        return row


@dataclass(frozen=True)
class CohortWorkerFactory:
    """Picklable recipe of a :class:`CohortWorker`, built once in each worker process or Ray actor."""

    models: tuple[str, ...]
    out_dir: str
    backend: str = "auto"
    weights_dir: str | None = None

    def __call__(self) -> CohortWorker:
        return CohortWorker(self.models, self.out_dir, self.backend, self.weights_dir)
