"""The Model zoo page's data: leaderboard rows for the shipped weights, whatever has been measured so far.

Sources, most specific first: ``seg_core.leaderboard.leaderboard_row`` (reads each folder's
``metrics.json``) when that module exists; otherwise the same fields read here from ``config.json``
and ``metrics.json``; then the committed ``weights/leaderboard.json`` (or ``leaderboard.json``) fills
anything still missing. Weights without test figures or costs appear with blanks, never guessed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from seg_core.weights import read_config

LEADERBOARD_FILES = ("leaderboard.json",)


def read_board(weights_dir: Path) -> dict[str, Any] | None:
    """The committed leaderboard (``weights/leaderboard.json``, else ``leaderboard.json`` beside weights/), or None."""
    for path in (weights_dir / "leaderboard.json", weights_dir.parent / "leaderboard.json"):
        if path.is_file():
            try:
                board = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if isinstance(board, dict):
                return board
    return None


def _metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def basic_row(model_id: str, weights_dir: Path) -> dict[str, Any]:
    """A leaderboard row from the folder itself (same fields as ``seg_core.leaderboard``)."""
    folder = weights_dir / model_id
    config = read_config(folder)
    metrics = _metrics(folder)
    dataset = config.get("dataset", "")
    test = metrics.get(f"test:{dataset}", {})
    cost = metrics.get("inference_cost", {})
    row: dict[str, Any] = {
        "id": model_id,
        "architecture": config["architecture"],
        "dataset": dataset,
        "spiking": bool(config.get("spiking", False)),
        "input_size": config.get("input_size"),
        "test_images": test.get("n"),
        "params": cost.get("params"),
        "macs": cost.get("macs"),
        "sops": cost.get("sops"),
        "energy_mj": cost.get("energy_mj"),
        "latency_ms": cost.get("latency_ms"),
    }
    for metric in ("dice", "iou", "hd95", "sensitivity", "precision"):
        row[f"{metric}_mean"] = test.get(f"{metric}_mean")
        row[f"{metric}_std"] = test.get(f"{metric}_std")
    return row


def leaderboard_rows(weights_ids: list[str], weights_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One row per shipped weights id, and the committed leaderboard file's content (or None)."""
    try:
        from seg_core.leaderboard import leaderboard_row as library_row
    except ImportError:  # the evaluate --all command is not in this checkout
        library_row = None
    board = read_board(weights_dir)
    committed = {row.get("id"): row for row in (board or {}).get("rows", []) if isinstance(row, dict)}
    rows = []
    for model_id in weights_ids:
        try:
            row = library_row(model_id, weights_dir) if library_row else basic_row(model_id, weights_dir)
        except Exception:  # a folder being written by a training run: list it next time
            continue
        for key, value in committed.get(model_id, {}).items():
            if row.get(key) is None and value is not None:
                row[key] = value
        rows.append(row)
    # Measured models first, best test Dice first within each data set; unmeasured ones last.
    rows.sort(key=lambda row: (row.get("dice_mean") is None, row.get("dataset") or "", -(row.get("dice_mean") or 0.0), row["id"]))
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
    # Two heading levels down, so a card's title sits under the page's own headings.
    lines, in_code = [], False
    for line in text.strip().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        lines.append("##" + line if line.startswith("#") and not in_code else line)
    return "\n".join(lines)
