"""BrainSeg Studio's engine: read any MRI scan, segment brain tumors, measure and explain.

Public API (imported lazily so ``python -m seg_core --help`` stays fast)::

    from seg_core import load_scan, Segmenter, save_mask, list_models, create_model, load_model

Data flows one way: scans -> preprocess -> models -> inference -> postprocess / metrics -> app.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Scan": "seg_core.scans",
    "ScanError": "seg_core.scans",
    "load_scan": "seg_core.scans",
    "save_mask": "seg_core.scans",
    "ModelSpec": "seg_core.models",
    "list_models": "seg_core.models",
    "create_model": "seg_core.models",
    "get_spec": "seg_core.models",
    "load_model": "seg_core.weights",
    "list_weights": "seg_core.weights",
    "save_pretrained": "seg_core.weights",
    "Segmenter": "seg_core.inference",
    "Prediction": "seg_core.inference",
    "PostProcessing": "seg_core.postprocess",
    "segmentation_metrics": "seg_core.metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seg_core' has no attribute {name!r}")
