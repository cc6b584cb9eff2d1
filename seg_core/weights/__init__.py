"""Trained weights in the Hugging Face Hub repo layout: ``config.json + model.safetensors + README.md``.

A weights folder ``weights/<architecture>.<dataset>/`` holds:

* ``config.json``: everything needed to rebuild and serve the model: ``architecture`` (registry
  name), ``model_config`` (its keyword arguments), ``modalities``, ``input_size``,
  ``normalization``, ``threshold``, the dataset and the training command;
* ``model.safetensors``: the state dict (safetensors only; never pickle), possibly stored as
  float16 to keep the repository small and loaded back as float32;
* ``metrics.json`` and ``README.md`` (the model card).

Loading is strict: a missing or unexpected key is an error, not a silently half-loaded model.

Where weights come from is always explicit, never guessed from a string:

* ``"unet.figshare"`` (an id) or a folder path: the local ``weights/`` folder, no network (the default);
* ``"hub:<org>/<repo>@<revision>"`` or a :class:`HubWeights`: a Hugging Face Hub model repo, pinned to a
  revision (a commit hash pins it for good; a branch or tag works and logs a warning). Files go to the
  Hub cache (``cache_dir``, else ``$HF_HUB_CACHE`` / ``$HF_HOME``); with ``HF_HUB_OFFLINE=1`` only the
  cache is used. An unreachable Hub, a missing repo, revision or file is a :class:`WeightsError`.

Integrity: :func:`save_pretrained` records the sha256 of every weights file in ``config.json`` (key
``sha256``) and the model card lists the same digests. Loading checks them before reading a tensor:
a mismatch is an error; Hub weights must carry the record, local folders written before it existed
load without it.

Modules: :mod:`~seg_core.weights.layout` (file names, ``config.json``), :mod:`~seg_core.weights.loading`,
:mod:`~seg_core.weights.saving`, :mod:`~seg_core.weights.integrity` (sha256 record),
:mod:`~seg_core.weights.hub` (download), :mod:`~seg_core.weights.publish` (upload) and
:mod:`~seg_core.weights.records` (``metrics.json`` and ``leaderboard.json``).

Example:
    >>> loaded = load_model("unet.figshare")                                          # doctest: +SKIP
    >>> loaded = load_model("hub:brainseg/unet-figshare@0f1e2d3c4b5a69788796a5b4c3d2e1f001234567")  # doctest: +SKIP
"""

from __future__ import annotations

from seg_core.weights.hub import HUB_FILES, HUB_PREFIX, HubWeights, download_hub_weights
from seg_core.weights.integrity import (
    files_section,
    read_sha256_record,
    record_sha256,
    sha256_file,
    verify_sha256,
    with_files_section,
)
from seg_core.weights.layout import (
    CARD_NAME,
    CONFIG_NAME,
    METRICS_NAME,
    SHA256_KEY,
    WEIGHTS_DIR,
    WEIGHTS_NAME,
    WeightsError,
    list_weights,
    read_config,
)
from seg_core.weights.loading import LoadedModel, load_model, resolve_weights
from seg_core.weights.publish import publish
from seg_core.weights.records import (
    LEADERBOARD_NAME,
    forget_metrics,
    json_safe,
    read_leaderboard,
    record_metrics,
    write_leaderboard,
)
from seg_core.weights.saving import save_pretrained

__all__ = [
    "CARD_NAME",
    "CONFIG_NAME",
    "HUB_FILES",
    "HUB_PREFIX",
    "HubWeights",
    "LEADERBOARD_NAME",
    "LoadedModel",
    "METRICS_NAME",
    "SHA256_KEY",
    "WEIGHTS_DIR",
    "WEIGHTS_NAME",
    "WeightsError",
    "download_hub_weights",
    "files_section",
    "json_safe",
    "list_weights",
    "load_model",
    "publish",
    "read_config",
    "read_leaderboard",
    "read_sha256_record",
    "record_metrics",
    "forget_metrics",
    "record_sha256",
    "resolve_weights",
    "save_pretrained",
    "sha256_file",
    "verify_sha256",
    "with_files_section",
    "write_leaderboard",
]
