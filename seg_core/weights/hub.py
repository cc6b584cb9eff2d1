"""Hugging Face Hub weights: a pinned reference (:class:`HubWeights`) and its download (cached, offline-aware)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seg_core.weights.layout import CARD_NAME, CONFIG_NAME, INT8_CALIBRATION_NAME, METRICS_NAME, WEIGHTS_NAME, WeightsError

logger = logging.getLogger(__name__)

#: The files of a weights folder that go to (and come from) the Hub; the first two are required.
HUB_FILES = (CONFIG_NAME, WEIGHTS_NAME, CARD_NAME, METRICS_NAME, INT8_CALIBRATION_NAME)
HUB_PREFIX = "hub:"
_REPO_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")


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
    card, ``metrics.json`` and the int8 calibration ranges when the repo has them), one by one with
    ``hf_hub_download``, so any Hub mirror answering ``/{repo}/resolve/{revision}/{file}`` serves them. A commit already in the
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
