"""Integrity: ``config.json`` records the sha256 of every weights file, and the model card lists the same digests."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from seg_core.weights.layout import CARD_NAME, CONFIG_NAME, SHA256_KEY, WeightsError, read_config

logger = logging.getLogger(__name__)

_CARD_DIGEST = re.compile(r"^\| `(?P<name>[^`/]+)` \| `(?P<digest>[0-9a-f]{64})` \|$", re.MULTILINE)
_CARD_FILES_HEADING = "## Files and checksums"


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
