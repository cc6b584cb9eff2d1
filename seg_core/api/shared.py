"""What the API's routes share: the settings and segmenter cache they are handed (FastAPI dependencies),
the disclaimer, and how a mask and its figures are put into an answer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from seg_core.api.admission import InferenceQueue
from seg_core.api.cache import SegmenterCache
from seg_core.evaluate import json_safe
from seg_core.scans import Scan

__all__ = [
    "DISCLAIMER",
    "MEDIA_TYPES",
    "ApiSettings",
    "Inference",
    "Segmenters",
    "Settings",
    "mask_filename",
    "mask_figures",
]

DISCLAIMER = "Research and teaching only: not a medical device; not for diagnosis or treatment."
MEDIA_TYPES = {"png": "image/png", "nifti": "application/gzip"}


@dataclass(frozen=True)
class ApiSettings:
    """What one application serves, fixed when it is built.

    Attributes:
        weights_dir: where trained weights are listed and loaded from.
        data_root: folder of the public data sets for ``/samples`` (None: ``$BRAINSEG_DATA_ROOT``,
            read per request).
        max_upload_bytes: largest request body accepted, counted as it arrives (chunked or not).
        inference_workers: segmentations decoded and run at once (threads of the inference queue).
        max_waiting: segmentations admitted beyond the running ones; more are answered 429.
    """

    weights_dir: Path
    data_root: str | Path | None
    max_upload_bytes: int
    inference_workers: int
    max_waiting: int


def _settings(request: Request) -> ApiSettings:
    return request.app.state.settings


def _segmenters(request: Request) -> SegmenterCache:
    return request.app.state.segmenters


def _inference_queue(request: Request) -> InferenceQueue:
    return request.app.state.inference_queue


#: Route parameters FastAPI fills from the application (they add nothing to the OpenAPI document).
Settings = Annotated[ApiSettings, Depends(_settings)]
Segmenters = Annotated[SegmenterCache, Depends(_segmenters)]
Inference = Annotated[InferenceQueue, Depends(_inference_queue)]


def mask_figures(mask: Any, scan: Scan, sizes: dict[str, Any]) -> dict[str, Any]:
    """The JSON figures of a mask ``(D, H, W)``: tumor pixels, areas per slice, volume, unit of area."""
    figures = {k: v for k, v in sizes.items() if not isinstance(v, list | tuple)}
    figures["slice_area_mm2"] = list(sizes.get("slice_area_mm2", []))
    figures["slices_with_tumor"] = [int(i) for i, area in enumerate(figures["slice_area_mm2"]) if area > 0]
    figures["tumor_pixels"] = int(mask.sum())
    figures["spacing_known"] = scan.spacing_known
    figures["area_unit"] = "mm2" if scan.spacing_known else "px"
    return json_safe(figures)


def mask_filename(fmt: str) -> str:
    return "mask.png" if fmt == "png" else "mask.nii.gz"
