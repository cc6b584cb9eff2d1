"""The Hub repo layout of a weights folder: its file names, where local folders live, reading ``config.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"
CONFIG_NAME, WEIGHTS_NAME, METRICS_NAME, CARD_NAME = "config.json", "model.safetensors", "metrics.json", "README.md"
#: The activation ranges an int8 graph is built from at first use (:mod:`seg_core.int8_graph`); the
#: graph itself is not shipped.
INT8_CALIBRATION_NAME = "model.int8.calibration.json"
#: config.json key of the ``{file name: sha256 hex}`` record of the weights files.
SHA256_KEY = "sha256"


class WeightsError(ValueError):
    """Weights are missing, malformed, or do not match their architecture."""


def list_weights(weights_dir: str | Path = WEIGHTS_DIR) -> list[str]:
    """Ids (``<architecture>.<dataset>``) of the weights folders shipped in ``weights_dir``."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if (p / CONFIG_NAME).exists() and (p / WEIGHTS_NAME).exists())


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.exists():
        raise WeightsError(f"{folder} has no {CONFIG_NAME}; a weights folder needs config.json and model.safetensors")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise WeightsError(f"{path} is not valid JSON: {error}") from None
    for key in ("architecture", "model_config", "modalities", "input_size"):
        if key not in config:
            raise WeightsError(f"{path} lacks the required key {key!r}")
    return config
