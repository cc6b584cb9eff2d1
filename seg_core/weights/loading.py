"""Loading weights strictly: resolve an id, a folder or Hub weights to a folder, check it, build the model."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

from seg_core.models import create_model, get_spec
from seg_core.weights.hub import HUB_PREFIX, HubWeights, download_hub_weights
from seg_core.weights.int8_storage import CODEC, decode_int8
from seg_core.weights.integrity import verify_sha256
from seg_core.weights.layout import WEIGHTS_DIR, WEIGHTS_NAME, WeightsError, list_weights, read_config

_ID_PATTERN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


@dataclass
class LoadedModel:
    """A ready-to-serve model and the config it was trained with.

    Attributes:
        model: the network, in eval mode.
        config: its ``config.json``.
        folder: where the files are (for Hub weights, the cache's snapshot folder).
        source: ``"local"`` or the pinned Hub reference ``hub:<org>/<repo>@<commit>``.
    """

    model: nn.Module
    config: dict[str, Any]
    folder: Path
    source: str = "local"

    @property
    def model_id(self) -> str:
        return self.config.get("id", self.folder.name)


def resolve_weights(model: str | Path | HubWeights, weights_dir: str | Path = WEIGHTS_DIR, **hub_options: Any) -> Path:
    """The local folder of ``model``: an id in ``weights_dir``, an explicit folder path, or Hub weights.

    An id must look like ``<architecture>.<dataset>``; a ``str`` starting with ``hub:`` (or a
    :class:`HubWeights`) is downloaded from the Hub (``hub_options``: ``endpoint``, ``cache_dir``,
    ``token``); anything else is treated as a path, so a string is never guessed to be something it
    does not look like.
    """
    if isinstance(model, HubWeights) or (isinstance(model, str) and model.startswith(HUB_PREFIX)):
        reference = model if isinstance(model, HubWeights) else HubWeights.parse(model, **hub_options)
        return download_hub_weights(reference)
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


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``model.safetensors``, int8-stored kernels already widened to float32."""
    with safe_open(str(path), framework="pt") as reader:
        codec = (reader.metadata() or {}).get("codec")
    state = load_file(str(path))
    if codec is None:
        return state
    if codec != CODEC:
        raise WeightsError(f"{path} is stored with codec {codec!r}, which this version cannot read (knows {CODEC!r})")
    try:
        return decode_int8(state)
    except ValueError as error:
        raise WeightsError(f"{path}: {error}") from None


def load_model(
    model: str | Path | HubWeights,
    weights_dir: str | Path = WEIGHTS_DIR,
    device: str | torch.device = "cpu",
    **hub_options: Any,
) -> LoadedModel:
    """Build the architecture named in the folder's config and load its weights strictly, in eval mode.

    Args:
        model: a weights id (``unet.figshare``), a folder, ``"hub:<org>/<repo>@<revision>"`` or a :class:`HubWeights`.
        weights_dir: where ids are looked up.
        device: where the model goes.
        hub_options: ``endpoint``, ``cache_dir``, ``token`` for a ``hub:`` string.

    Raises:
        WeightsError: missing or malformed files, a sha256 mismatch, weights that do not fit the
            architecture, or (Hub) an unreachable Hub, an unknown repo, revision or file.
    """
    from_hub = isinstance(model, HubWeights) or (isinstance(model, str) and model.startswith(HUB_PREFIX))
    folder = resolve_weights(model, weights_dir, **hub_options)
    config = read_config(folder)
    # Hub weights must carry their digests; local folders older than the record load without one.
    verify_sha256(folder, config, required=from_hub)
    get_spec(config["architecture"])  # a clear KeyError for an unknown architecture
    net = create_model(config["architecture"], **config["model_config"])
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.exists():
        raise WeightsError(f"{folder} has no {WEIGHTS_NAME}")
    state = _read_state(weights_path)
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
    source = "local"
    if from_hub:
        reference = model if isinstance(model, HubWeights) else HubWeights.parse(str(model), **hub_options)
        source = f"{HUB_PREFIX}{reference.repo_id}@{folder.name}"  # the snapshot folder is named by its commit
    return LoadedModel(net, config, folder, source)
