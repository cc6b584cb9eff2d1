"""The figures recorded beside the weights: each folder's ``metrics.json`` and the ``leaderboard.json`` of them all.

Every writer of a weights folder's figures (training, selection, evaluation, the leaderboard's cost
profile) goes through :func:`record_metrics`, so the files stay standard JSON (nan written as null)
and the model card always shows what ``metrics.json`` holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from seg_core.weights.layout import METRICS_NAME, WEIGHTS_DIR

LEADERBOARD_NAME = "leaderboard.json"


def json_safe(value: Any) -> Any:
    """``value`` with nan and inf replaced by None, so the JSON is standard (``NaN`` is not JSON)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n")


def record_metrics(folder: str | Path, key: str, value: dict[str, Any], merge: bool = False) -> Path:
    """Set (or, with ``merge``, update) ``key`` of ``folder/metrics.json`` and rewrite the model card."""
    # Imported here: the model card reads this package (its checksum section), so a module-level
    # import would be circular.
    from seg_core.model_card import write_model_card

    path = Path(folder) / METRICS_NAME
    metrics = json.loads(path.read_text()) if path.exists() else {}
    if merge:
        metrics.setdefault(key, {}).update(value)
    else:
        metrics[key] = value
    _write_json(path, metrics)
    write_model_card(path.parent)
    return path


def forget_metrics(folder: str | Path, key: str) -> bool:
    """Remove ``key`` from ``folder/metrics.json`` (figures of weights no longer there) and rewrite the
    model card; returns whether there was one."""
    from seg_core.model_card import write_model_card

    path = Path(folder) / METRICS_NAME
    metrics = json.loads(path.read_text()) if path.exists() else {}
    if metrics.pop(key, None) is None:
        return False
    _write_json(path, metrics)
    write_model_card(path.parent)
    return True


def write_leaderboard(board: dict[str, Any], weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """Write ``board`` (see :func:`seg_core.leaderboard.build_leaderboard`) to ``weights_dir/leaderboard.json``."""
    path = Path(weights_dir) / LEADERBOARD_NAME
    _write_json(path, board)
    return path


def read_leaderboard(weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any] | None:
    """The committed leaderboard, or ``None`` when it has not been generated."""
    path = Path(weights_dir) / LEADERBOARD_NAME
    return json.loads(path.read_text()) if path.exists() else None
