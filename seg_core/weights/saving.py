"""Saving weights in the Hub layout, with the sha256 record that loading checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn as nn
from safetensors.torch import save_file

from seg_core.weights.integrity import sha256_file, with_files_section
from seg_core.weights.layout import CARD_NAME, CONFIG_NAME, METRICS_NAME, SHA256_KEY, WEIGHTS_NAME


def save_pretrained(
    model: nn.Module,
    config: dict[str, Any],
    folder: str | Path,
    *,
    metrics: dict[str, Any] | None = None,
    card: str | None = None,
    half: bool = True,
) -> Path:
    """Write ``model`` and ``config`` to ``folder`` in the Hub layout; floats stored as float16 when ``half``.

    ``config.json`` records the sha256 of ``model.safetensors`` (key ``sha256``), which loading checks;
    a model card rendered from this config lists the same digest.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        state[key] = value.half() if half and value.is_floating_point() else value
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "architecture": config["architecture"]})
    record = {WEIGHTS_NAME: sha256_file(folder / WEIGHTS_NAME)}
    stored = {**config, "stored_dtype": "float16" if half else "float32", SHA256_KEY: record}
    (folder / CONFIG_NAME).write_text(json.dumps(stored, indent=2) + "\n")
    if metrics is not None:
        (folder / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    if card is not None:
        (folder / CARD_NAME).write_text(with_files_section(card, record))
    return folder
