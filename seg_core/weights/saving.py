"""Saving weights in the Hub layout, with the sha256 record that loading checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch.nn as nn
from safetensors.torch import save_file

from seg_core.weights.int8_storage import CODEC, encode_int8
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
    int8: bool = False,
) -> Path:
    """Write ``model`` and ``config`` to ``folder`` in the Hub layout; floats stored as float16 when ``half``.

    With ``int8`` every kernel is stored as per-channel int8 (:mod:`seg_core.weights.int8_storage`),
    the other floats as ``half`` says; loading widens both back to float32.

    ``config.json`` records the sha256 of ``model.safetensors`` (key ``sha256``), which loading checks;
    a model card rendered from this config lists the same digest.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"format": "pt", "architecture": config["architecture"]}
    if int8:
        state = encode_int8(model.state_dict(), half=half)
        metadata["codec"] = CODEC
    else:
        state = {}
        for key, value in model.state_dict().items():
            value = value.detach().cpu().contiguous()
            state[key] = value.half() if half and value.is_floating_point() else value
    save_file(state, str(folder / WEIGHTS_NAME), metadata=metadata)
    record = {WEIGHTS_NAME: sha256_file(folder / WEIGHTS_NAME)}
    dtype = "float16" if half else "float32"
    stored = {**config, "stored_dtype": f"int8 per channel (kernels), {dtype} (the rest)" if int8 else dtype, SHA256_KEY: record}
    (folder / CONFIG_NAME).write_text(json.dumps(stored, indent=2) + "\n")
    if metrics is not None:
        (folder / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    if card is not None:
        (folder / CARD_NAME).write_text(with_files_section(card, record))
    return folder
