"""Small models written in the weights layout, for the tests and benchmarks that need a weights folder.

Every test model reads one T1c channel at a square input size unless told otherwise; the rest of its
``config.json`` (normalization, threshold, dataset, spiking ...) is what the caller passes.

Example:
    >>> folder = save_tiny_model(tmp / "tcsa_snn.test", "tcsa_snn", {"width": 8, "in_channels": 1}, 64,
    ...                          half=False, threshold=0.5, spiking=True)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from seg_core.models import create_model
from seg_core.weights import save_pretrained

#: The percentile normalization the shipped models use.
PERCENTILE = {"kind": "percentile", "lower": 0.5, "upper": 99.5}
#: Config fields of a test model fed the intensities as they are, its mask thresholded at 0.5.
UNNORMALIZED = {"normalization": {"kind": "none"}, "threshold": 0.5}


def weights_config(architecture: str, model_config: dict[str, Any], input_size: int, **fields: Any) -> dict[str, Any]:
    """A ``config.json`` for ``architecture`` built with ``model_config``, reading T1c at ``input_size`` px square.

    ``fields`` add keys, or replace ``modalities``.
    """
    config = {
        "architecture": architecture,
        "model_config": dict(model_config),
        "modalities": ["t1c"],
        "input_size": [input_size, input_size],
    }
    return {**config, **fields}


def save_tiny_model(
    folder: str | Path,
    architecture: str,
    model_config: dict[str, Any],
    input_size: int,
    *,
    model: nn.Module | None = None,
    seed: int | None = 0,
    half: bool = True,
    metrics: dict[str, Any] | None = None,
    card: str | None = None,
    **fields: Any,
) -> Path:
    """Write ``model`` (default: a fresh ``architecture`` seeded with ``seed``; None keeps torch's RNG as it is)
    with :func:`weights_config` to ``folder``; returns the folder."""
    if model is None:
        if seed is not None:
            torch.manual_seed(seed)
        model = create_model(architecture, **model_config).eval()
    config = weights_config(architecture, model_config, input_size, **fields)
    return save_pretrained(model, config, folder, metrics=metrics, card=card, half=half)
