"""Publishing a weights folder to a Hugging Face Hub model repo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seg_core.weights.hub import HUB_FILES, HUB_PREFIX, HubWeights
from seg_core.weights.integrity import sha256_file, verify_sha256
from seg_core.weights.layout import INT8_CALIBRATION_NAME, WEIGHTS_DIR, WeightsError, read_config
from seg_core.weights.loading import resolve_weights


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
    ``metrics.json``, and ``model.int8.calibration.json`` where ``quantize`` kept one), and only after
    their sha256 records (``sha256``, and ``int8`` for the calibration ranges) have been checked, so
    what is published is what was saved.

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
    _verify_int8_calibration(folder, config)
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


def _verify_int8_calibration(folder: Path, config: dict[str, Any]) -> None:
    """Refuse calibration ranges that are not the ones ``quantize`` validated (a stale file has no record)."""
    path = folder / INT8_CALIBRATION_NAME
    if path.is_file() and sha256_file(path) != (config.get("int8") or {}).get("sha256"):
        raise WeightsError(f"{path} does not match the sha256 under int8 in its config.json; rerun python -m seg_core quantize")
