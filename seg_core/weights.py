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

Example:
    >>> loaded = load_model("unet.figshare")                                          # doctest: +SKIP
    >>> loaded = load_model("hub:brainseg/unet-figshare@0f1e2d3c4b5a69788796a5b4c3d2e1f001234567")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors.torch import load_file, save_file

from seg_core.models import create_model, get_spec

__all__ = [
    "HUB_PREFIX",
    "WEIGHTS_DIR",
    "HubWeights",
    "LoadedModel",
    "WeightsError",
    "download_hub_weights",
    "list_weights",
    "load_model",
    "publish",
    "read_sha256_record",
    "record_sha256",
    "resolve_weights",
    "save_pretrained",
    "sha256_file",
    "verify_sha256",
]

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
CONFIG_NAME, WEIGHTS_NAME, METRICS_NAME, CARD_NAME = "config.json", "model.safetensors", "metrics.json", "README.md"
#: The files of a weights folder that go to (and come from) the Hub; the first two are required.
HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, METRICS_NAME)
HUB_PREFIX = "hub:"
#: config.json key of the ``{file name: sha256 hex}`` record of the weights files.
SHA256_KEY = "sha256"
_ID_PATTERN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_REPO_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
_CARD_DIGEST = re.compile(r"^\| `(?P<name>[^`/]+)` \| `(?P<digest>[0-9a-f]{64})` \|$", re.MULTILINE)
_CARD_FILES_HEADING = "## Files and checksums"


class WeightsError(ValueError):
    """Weights are missing, malformed, or do not match their architecture."""


@dataclass(frozen=True)
class HubWeights:
    """Weights in a Hugging Face Hub model repo, pinned to a revision: the explicit way to ask for the Hub.

    Attributes:
        repo_id: ``"<org>/<repo>"``.
        revision: a commit hash (pinned for good), or a tag or branch name.
        endpoint: the Hub's URL; default ``$HF_ENDPOINT`` or https://huggingface.co (tests pass a mock's).
        cache_dir: the download cache; default ``$HF_HUB_CACHE`` (``$HF_HOME/hub``).
        token: an access token for private repos; default the one ``hf auth login`` saved or ``$HF_TOKEN``.
    """

    repo_id: str
    revision: str
    endpoint: str | None = None
    cache_dir: str | Path | None = None
    token: str | bool | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _REPO_PATTERN.match(self.repo_id) or ".." in self.repo_id:
            raise WeightsError(f"{self.repo_id!r} is not a Hub repo id; write it as <org>/<repo>, e.g. brainseg/unet-figshare")
        if not _REVISION_PATTERN.match(self.revision) or ".." in self.revision:
            raise WeightsError(f"{self.revision!r} is not a revision; give a commit hash, a tag or a branch name")

    @classmethod
    def parse(cls, text: str, **options: Any) -> HubWeights:
        """Read ``"hub:<org>/<repo>@<revision>"``; ``options`` are the other fields (endpoint, cache_dir, token).

        Raises:
            WeightsError: no ``hub:`` prefix, or no ``@<revision>`` (an unpinned Hub download is refused).
        """
        if not text.startswith(HUB_PREFIX):
            raise WeightsError(
                f"{text!r} does not start with {HUB_PREFIX!r}; Hub weights are written hub:<org>/<repo>@<revision>"
            )
        repo_id, sep, revision = text[len(HUB_PREFIX) :].partition("@")
        if not sep or not revision:
            raise WeightsError(
                f"{text!r} names no revision: pin one, e.g. {HUB_PREFIX}{repo_id}@<commit hash> (or @main to follow the branch)"
            )
        return cls(repo_id, revision, **options)

    @property
    def pinned(self) -> bool:
        """True when the revision is a full commit hash (the files can never change)."""
        return bool(_COMMIT_PATTERN.match(self.revision))

    def __str__(self) -> str:
        return f"{HUB_PREFIX}{self.repo_id}@{self.revision}"


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


def list_weights(weights_dir: str | Path = WEIGHTS_DIR) -> list[str]:
    """Ids (``<architecture>.<dataset>``) of the weights folders shipped in ``weights_dir``."""
    weights_dir = Path(weights_dir)
    if not weights_dir.is_dir():
        return []
    return sorted(p.name for p in weights_dir.iterdir() if (p / CONFIG_NAME).exists() and (p / WEIGHTS_NAME).exists())


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
    source = "local"
    if from_hub:
        reference = model if isinstance(model, HubWeights) else HubWeights.parse(str(model), **hub_options)
        source = f"{HUB_PREFIX}{reference.repo_id}@{folder.name}"  # the snapshot folder is named by its commit
    return LoadedModel(net, config, folder, source)


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


# --------------------------------------------------------------------------------------------
# sha256 record: config.json holds it, the model card lists it
# --------------------------------------------------------------------------------------------


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (weights can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def files_section(record: dict[str, str]) -> list[str]:
    """Model-card lines listing the sha256 of each weights file (the same record as ``config.json``)."""
    lines = [_CARD_FILES_HEADING, "| file | sha256 |", "|---|---|"]
    lines += [f"| `{name}` | `{digest}` |" for name, digest in sorted(record.items())]
    lines += ["", "`seg_core.weights.load_model` checks these digests (also in `config.json` under `sha256`) before loading."]
    return lines


def with_files_section(card: str, record: dict[str, str]) -> str:
    """``card`` with its checksum section replaced by (or, when absent, given) the one for ``record``.

    The section goes before ``## Limits`` when the card has that heading, else at the end; nothing
    else in the card changes.
    """
    section = "\n".join(files_section(record)) + "\n"
    start = card.find(_CARD_FILES_HEADING)
    if start >= 0:
        following = card.find("\n## ", start + len(_CARD_FILES_HEADING))
        end = len(card) if following < 0 else following + 1
        return card[:start] + section + ("\n" if following >= 0 else "") + card[end:].lstrip("\n")
    limits = card.find("\n## Limits")
    if limits >= 0:
        return card[: limits + 1] + section + "\n" + card[limits + 1 :]
    return card.rstrip("\n") + "\n\n" + section


def read_sha256_record(folder: str | Path, config: dict[str, Any] | None = None) -> dict[str, str]:
    """The ``{file name: sha256}`` record of a weights folder: ``config.json``'s, checked against the card's.

    Returns an empty dict when the folder has no record.

    Raises:
        WeightsError: the record is malformed, or the model card lists other digests than ``config.json``.
    """
    folder = Path(folder)
    config = read_config(folder) if config is None else config
    record = config.get(SHA256_KEY) or {}
    if not isinstance(record, dict) or not all(
        isinstance(k, str) and "/" not in k and isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for k, v in record.items()
    ):
        raise WeightsError(f"{folder / CONFIG_NAME}: {SHA256_KEY!r} must map file names to 64-digit hex sha256 digests")
    card_path = folder / CARD_NAME
    if card_path.is_file():
        listed = {m["name"]: m["digest"] for m in _CARD_DIGEST.finditer(card_path.read_text(errors="replace"))}
        if listed and listed != record:
            raise WeightsError(
                f"the model card {card_path} lists other sha256 digests than {CONFIG_NAME}; the folder was edited by hand "
                "or half-copied. Re-save the weights (save_pretrained) or restore the folder."
            )
    return dict(record)


def verify_sha256(folder: str | Path, config: dict[str, Any] | None = None, *, required: bool = False) -> dict[str, str]:
    """Check every weights file (``*.safetensors``) of ``folder`` against the sha256 record.

    Args:
        folder: the weights folder.
        config: its config (read when None).
        required: a folder without a record is an error (Hub weights) rather than accepted (older local folders).

    Returns:
        The record that was checked.

    Raises:
        WeightsError: no record while ``required``, a weights file missing from the record or from the
            folder, or a digest that differs (the file was changed or damaged after it was saved).
    """
    folder = Path(folder)
    record = read_sha256_record(folder, config)
    if not record:
        if required:
            raise WeightsError(
                f"{folder} carries no sha256 record ({SHA256_KEY!r} in {CONFIG_NAME}); weights from the Hub are only loaded "
                "when their digests can be checked. Publish them with `python -m seg_core publish`."
            )
        logger.debug("%s has no sha256 record; loading it unchecked", folder)
        return record
    present = {p.name for p in folder.glob("*.safetensors")}
    unrecorded = sorted(present - set(record))
    if unrecorded:
        raise WeightsError(f"{folder}: {', '.join(unrecorded)} is not in the sha256 record of {CONFIG_NAME}; refusing to load it")
    for name, expected in record.items():
        path = folder / name
        if not path.is_file():
            raise WeightsError(f"{folder} lacks {name}, which its sha256 record lists")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsError(
                f"{name} in {folder} does not match its recorded sha256 (expected {expected[:12]}..., got {actual[:12]}...): "
                "the file was changed or damaged after it was saved; refusing to load it"
            )
    return record


def record_sha256(folder: str | Path) -> dict[str, str]:
    """Add (or refresh) the sha256 record of an existing weights folder, touching metadata only.

    ``config.json`` gains the ``sha256`` key and the model card its checksum section; the weights
    files themselves are only read. For folders saved before :func:`save_pretrained` wrote the record.

    Returns:
        The record written.
    """
    folder = Path(folder)
    config = read_config(folder)
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise WeightsError(f"{folder} has no .safetensors file to record")
    record = {path.name: sha256_file(path) for path in weights}
    config[SHA256_KEY] = record
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    card = folder / CARD_NAME
    if card.is_file():
        card.write_text(with_files_section(card.read_text(), record))
    return record


# --------------------------------------------------------------------------------------------
# Hugging Face Hub: download (pinned, cached, offline-aware) and publish
# --------------------------------------------------------------------------------------------


def _hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (huggingface_hub reads it once, at import)."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return value in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def _hub_cache(cache_dir: str | Path | None) -> str | None:
    if cache_dir is not None:
        return str(cache_dir)
    return os.environ.get("HF_HUB_CACHE") or (str(Path(os.environ["HF_HOME"]) / "hub") if os.environ.get("HF_HOME") else None)


def download_hub_weights(reference: HubWeights) -> Path:
    """Download (or find in the cache) a Hub weights repo's files; returns the snapshot folder.

    Only the weights-folder files are fetched (``config.json``, ``model.safetensors``, and the model
    card and ``metrics.json`` when the repo has them), one by one with ``hf_hub_download``, so any
    Hub mirror answering ``/{repo}/resolve/{revision}/{file}`` serves them. A commit already in the
    cache is served without any request; an unreachable Hub is noticed with one request (no retry
    storm per file) and then only the cache is used. Digests are checked by :func:`load_model`.

    Raises:
        WeightsError: with what to do about it, for an unreachable Hub (or offline without a cached
            copy), an unknown repo or revision, or a missing required file.
    """
    offline = _hub_offline()
    if not reference.pinned:
        logger.warning("%s follows a branch or tag, not a commit: its files may change; pin a commit hash to fix them", reference)
    if reference.pinned and not offline:
        try:  # a commit never changes: when its files are cached, the Hub is not asked at all
            return _fetch_hub_files(reference, local_only=True, reason="cache")
        except WeightsError:
            pass
    reason = "offline" if offline else "online"
    if not offline and not _hub_reachable(reference):
        reason = "unreachable"
    return _fetch_hub_files(reference, local_only=reason != "online", reason=reason)


def _hub_endpoint(reference: HubWeights) -> str:
    from huggingface_hub import constants

    return reference.endpoint or constants.ENDPOINT


def _hub_reachable(reference: HubWeights) -> bool:
    """One HEAD request, no retries: does the Hub answer at all (any HTTP status counts)?"""
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(reference.repo_id, CONFIG_NAME, revision=reference.revision, endpoint=_hub_endpoint(reference))
    try:
        get_hf_file_metadata(url, token=reference.token, timeout=10, retry_on_errors=False)
    except HfHubHTTPError:
        return True  # it answered (404, 401 ...): hf_hub_download will name the problem
    except (httpx2.HTTPError, OSError) as error:
        logger.warning("the Hub at %s does not answer (%s); using the cache", _hub_endpoint(reference), type(error).__name__)
        return False
    return True


def _fetch_hub_files(reference: HubWeights, *, local_only: bool, reason: str) -> Path:
    from huggingface_hub import _CACHED_NO_EXIST, hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from seg_core import __version__

    where = _hub_endpoint(reference)
    cache_dir = _hub_cache(reference.cache_dir)
    paths: dict[str, Path] = {}
    for filename in HUB_FILES:
        required = filename in (CONFIG_NAME, WEIGHTS_NAME)
        known_absent = (
            reference.pinned
            and try_to_load_from_cache(reference.repo_id, filename, cache_dir=cache_dir, revision=reference.revision)
            is _CACHED_NO_EXIST
        )
        if known_absent and not required:
            continue  # the cache remembers that this commit has no such file
        try:
            paths[filename] = Path(
                hf_hub_download(
                    reference.repo_id,
                    filename,
                    revision=reference.revision,
                    endpoint=reference.endpoint,
                    cache_dir=cache_dir,
                    token=reference.token,
                    local_files_only=local_only,
                    library_name="brainseg-studio",
                    library_version=__version__,
                )
            )
        except RemoteEntryNotFoundError:
            if required:
                raise WeightsError(
                    f"{reference} has no {filename}; a weights repo needs {CONFIG_NAME} and {WEIGHTS_NAME}"
                ) from None
        except RevisionNotFoundError:
            raise WeightsError(f"{reference.repo_id} on {where} has no revision {reference.revision!r}") from None
        except RepositoryNotFoundError:
            raise WeightsError(
                f"no Hub repo {reference.repo_id!r} on {where} (or it is private: log in with `hf auth login` or set HF_TOKEN)"
            ) from None
        except LocalEntryNotFoundError:
            if not required:
                continue  # optional files missing from the cache are fine once the required ones are there
            if reason == "offline":
                raise WeightsError(
                    f"HF_HUB_OFFLINE is set and {filename} of {reference} is not in the Hub cache; download it once online "
                    "(or unset HF_HUB_OFFLINE)"
                ) from None
            if reason == "cache":
                raise WeightsError(f"{filename} of {reference} is not cached") from None
            raise WeightsError(
                f"cannot reach the Hub at {where} to fetch {filename} of {reference}, and it is not in the cache; "
                "check the network (or HF_ENDPOINT), or use local weights"
            ) from None
        except EntryNotFoundError:
            if required:
                raise WeightsError(f"{reference} has no {filename}") from None
        except (HfHubHTTPError, OSError) as error:
            raise WeightsError(f"downloading {filename} of {reference} from {where} failed: {error}") from None
    folders = {path.parent for path in paths.values()}
    if len(folders) != 1:
        raise WeightsError(f"the files of {reference} came from different commits (the branch moved); pin a commit hash")
    folder = folders.pop()
    logger.info("Hub weights %s resolved to commit %s (%s)", reference, folder.name, reason)
    return folder


def publish(
    model: str | Path,
    repo_id: str,
    *,
    weights_dir: str | Path = WEIGHTS_DIR,
    revision: str | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
) -> dict[str, str]:
    """Upload a weights folder to a Hub model repo (created when missing) with ``huggingface_hub``.

    Exactly the weights-folder files go up (``config.json``, ``model.safetensors``, ``README.md``,
    ``metrics.json``), and only after their sha256 record has been checked, so what is published is
    what was saved.

    Args:
        model: a weights id or folder.
        repo_id: ``"<org>/<repo>"``.
        revision: branch to commit to (default ``main``).
        endpoint, token: as for :class:`HubWeights`.
        private: create the repo private (default: the Hub's default).
        commit_message: default ``"Upload <id> (BrainSeg Studio)"``.

    Returns:
        ``repo_id``, ``commit`` (the new commit hash), ``commit_url`` and ``load`` (the pinned
        ``hub:<org>/<repo>@<commit>`` reference that loads exactly these files).

    Raises:
        WeightsError: a folder without a (matching) sha256 record, or a Hub error.
    """
    import httpx2
    from huggingface_hub import CommitOperationAdd, HfApi

    folder = resolve_weights(model, weights_dir)
    config = read_config(folder)
    verify_sha256(folder, config, required=True)
    HubWeights(repo_id, revision or "main")  # validates the names before any request
    model_id = config.get("id", folder.name)
    operations = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
        for name in HUB_FILES
        if (folder / name).is_file()
    ]
    api = HfApi(endpoint=endpoint, token=token, library_name="brainseg-studio")
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=commit_message or f"Upload {model_id} (BrainSeg Studio)",
            revision=revision,
            repo_type="model",
        )
    except (httpx2.HTTPError, OSError, ValueError) as error:  # HfHubHTTPError is an httpx2.HTTPError
        raise WeightsError(f"publishing {model_id} to {repo_id} at {endpoint or 'the Hub'} failed: {error}") from None
    return {
        "repo_id": repo_id,
        "commit": info.oid,
        "commit_url": str(info.commit_url),
        "load": f"{HUB_PREFIX}{repo_id}@{info.oid}",
    }
