"""Trained weights in the Hugging Face Hub repo layout: ``config.json + model.safetensors + README.md``.

A weights folder ``weights/<architecture>.<dataset>/`` holds:

* ``config.json``: everything needed to rebuild and serve the model: ``architecture`` (registry
  name), ``model_config`` (its keyword arguments), ``modalities``, ``input_size``,
  ``normalization``, ``threshold``, the dataset and the training command;
* ``model.safetensors``: the state dict (safetensors only; never pickle), possibly stored as
  float16 to keep the repository small and loaded back as float32;
* ``metrics.json`` and ``README.md`` (the model card).

Loading is strict: a missing or unexpected key is an error, not a silently half-loaded model.

Example:
    >>> model, config = load_model("unet.figshare")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from seg_core.models import create_model, get_spec

__all__ = ["WEIGHTS_DIR", "WeightsError", "LoadedModel", "list_weights", "resolve_weights", "load_model", "save_pretrained"]

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
CONFIG_NAME, WEIGHTS_NAME, METRICS_NAME, CARD_NAME = "config.json", "model.safetensors", "metrics.json", "README.md"
_ID_PATTERN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


class WeightsError(ValueError):
    """Weights are missing, malformed, or do not match their architecture."""


@dataclass
class LoadedModel:
    """A ready-to-serve model and the config it was trained with."""

    model: nn.Module
    config: dict[str, Any]
    folder: Path

    @property
    def model_id(self) -> str:
        return self.config.get("id", self.folder.name)


def list_weights(weights_dir: str | Path = WEIGHTS_DIR) -> list[str]:
    """Ids (``<architecture>.<dataset>``) of the weights folders shipped in ``weights_dir``."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if (p / CONFIG_NAME).exists() and (p / WEIGHTS_NAME).exists())


def resolve_weights(model: str | Path, weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """The local folder of ``model``: an id in ``weights_dir`` or an explicit folder path.

    An id must look like ``<architecture>.<dataset>``; anything else is treated as a path, so a
    string is never guessed to be something it does not look like.
    """
    text = str(model)
    if _ID_PATTERN.match(text):
        folder = Path(weights_dir) / text
        if not folder.is_dir():
            available = ", ".join(list_weights(weights_dir)) or "none"
            raise WeightsError(f"no weights named {text!r} in {weights_dir}; available: {available}")
        return folder
    folder = Path(text)
    if not folder.is_dir():
        raise WeightsError(f"{text!r} is neither a weights id like 'unet.figshare' nor a weights folder")
    return folder


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


def load_model(model: str | Path, weights_dir: str | Path = WEIGHTS_DIR, device: str | torch.device = "cpu") -> LoadedModel:
    """Build the architecture named in the folder's config and load its weights strictly, in eval mode."""
    folder = resolve_weights(model, weights_dir)
    config = read_config(folder)
    get_spec(config["architecture"])  # a clear KeyError for an unknown architecture
    net = create_model(config["architecture"], **config["model_config"])
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.exists():
        raise WeightsError(f"{folder} has no {WEIGHTS_NAME}")
    state = load_file(str(weights_path))
    expected = net.state_dict()
    # Stored float16 is widened back to the parameter's own dtype; integer buffers stay as they are.
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in state.items()}
    missing, unexpected = set(expected) - set(state), set(state) - set(expected)
    if missing or unexpected:
        raise WeightsError(
            f"weights in {folder} do not match architecture {config['architecture']!r}: "
            f"missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}"
        )
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:  # shapes differ: the config does not describe these weights
        raise WeightsError(f"weights in {folder} do not match architecture {config['architecture']!r}: {error}") from None
    net.eval().to(device)
    return LoadedModel(net, config, folder)


def save_pretrained(
    model: nn.Module,
    config: dict[str, Any],
    folder: str | Path,
    *,
    metrics: dict[str, Any] | None = None,
    card: str | None = None,
    half: bool = True,
) -> Path:
    """Write ``model`` and ``config`` to ``folder`` in the Hub layout; floats stored as float16 when ``half``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        state[key] = value.half() if half and value.is_floating_point() else value
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "architecture": config["architecture"]})
    (folder / CONFIG_NAME).write_text(json.dumps({**config, "stored_dtype": "float16" if half else "float32"}, indent=2) + "\n")
    if metrics is not None:
        (folder / METRICS_NAME).write_text(json.dumps(metrics, indent=2) + "\n")
    if card is not None:
        (folder / CARD_NAME).write_text(card)
    return folder
