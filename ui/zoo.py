"""The Model zoo page's data: leaderboard rows for the shipped weights, whatever has been measured so far.

Rows come from :func:`seg_core.leaderboard.leaderboard_row`, which reads each folder's
``metrics.json`` (so weights trained since the last ``python -m seg_core evaluate --all`` appear,
with blanks where nothing is measured yet, never guessed); the committed
``weights/leaderboard.json`` supplies the seed projects' published figures.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from seg_core.leaderboard import leaderboard_row, read_leaderboard

log = logging.getLogger(__name__)


def leaderboard_rows(weights_ids: list[str], weights_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One row per shipped weights id, best test Dice first within a data set, and the committed leaderboard (or None)."""
    rows = []
    for model_id in weights_ids:
        try:
            rows.append(leaderboard_row(model_id, weights_dir))
        except (OSError, ValueError, KeyError) as error:  # a folder being written by a training run: listed next time
            log.warning("leaderboard row of %s unavailable: %s", model_id, error)
    rows.sort(key=lambda row: (row.get("dataset") or "", -(row.get("dice_mean") if row.get("dice_mean") is not None else -1.0)))
    try:
        board = read_leaderboard(weights_dir)
    except (OSError, ValueError):
        board = None
    return rows, board


def model_card(model_id: str, weights_dir: Path) -> str | None:
    """The model card (``README.md``) without its YAML front matter, or None."""
    path = weights_dir / model_id / "README.md"
    if not path.is_file():
        return None
    text = path.read_text()
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            text = text[end + 4 :]
    return text.strip()
