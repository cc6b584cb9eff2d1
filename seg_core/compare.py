"""Several models' masks of one scan side by side: where they agree, how close each is to a truth, what each costs.

The Compare page shows these; a script comparing models on a scan can use them the same way.

Example:
    >>> import numpy as np
    >>> first = np.zeros((1, 8, 8), np.uint8); first[0, 2:6, 2:6] = 1
    >>> second = np.zeros_like(first); second[0, 2:6, 2:4] = 1
    >>> agreement_share([first, second])
    0.5
    >>> pairwise_dice([first, second]).round(3).tolist()
    [[1.0, 0.667], [0.667, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["agreement_share", "cost_table", "pairwise_dice", "truth_table"]


def agreement_share(masks: Sequence[np.ndarray]) -> float:
    """Voxels every model marks, out of those any model marks (1.0 when no model marks any).

    Args:
        masks: binary masks of one scan, all of the same shape (any number of dimensions).
    """
    stacked = np.stack([np.asarray(mask, dtype=bool) for mask in masks])
    union = np.count_nonzero(stacked.any(axis=0))
    return float(np.count_nonzero(stacked.all(axis=0)) / union) if union else 1.0


def pairwise_dice(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Dice between every two masks ``(M, M)``, 1.0 on the diagonal and between two empty masks.

    Args:
        masks: ``M`` binary masks of the same shape.
    """
    import torch

    from seg_core.metrics import batch_dice

    flat = torch.from_numpy(np.stack([np.asarray(mask, dtype=bool).reshape(-1) for mask in masks]))
    matrix = np.ones((len(masks), len(masks)))
    # Pair by pair rather than one batch of every pair: M^2 copies of a volume would not fit in memory.
    for i in range(len(masks)):
        for j in range(i + 1, len(masks)):
            matrix[i, j] = matrix[j, i] = float(batch_dice(flat[i : i + 1], flat[j : j + 1])[0])
    return matrix


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), digits)


def truth_table(metrics: Mapping[str, Mapping[str, float]], spacing_known: bool) -> pd.DataFrame:
    """One row per model of its figures against a ground truth (from :func:`seg_core.metrics.segmentation_metrics`).

    Args:
        metrics: model id -> its metrics over the whole scan.
        spacing_known: whether HD95 is in mm (else pixels); it names the column.

    Returns:
        Columns ``model``, ``Dice``, ``IoU``, ``HD95 (mm|px)``, ``sensitivity``, ``precision``; undefined
        figures (HD95 with an empty mask, precision of an empty prediction) are missing values.
    """
    hd95 = f"HD95 ({'mm' if spacing_known else 'px'})"
    rows = [
        {
            "model": model_id,
            "Dice": _rounded(figures["dice"], 4),
            "IoU": _rounded(figures["iou"], 4),
            hd95: _rounded(figures["hd95"], 2),
            "sensitivity": _rounded(figures["sensitivity"], 4),
            "precision": _rounded(figures["precision"], 4),
        }
        for model_id, figures in metrics.items()
    ]
    return pd.DataFrame(rows, columns=["model", "Dice", "IoU", hd95, "sensitivity", "precision"])


def _scaled(value: float | None, scale: float, digits: int) -> float | None:
    return round(value / scale, digits) if value else None


def cost_table(
    costs: Mapping[str, Mapping[str, Any]], seconds: Mapping[str, float], backends: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """One row per model of its cost of one inference and its time on this scan.

    Args:
        costs: model id -> :func:`seg_core.leaderboard.inference_cost` (``params``, ``macs``, ``sops``,
            ``energy_mj``, ``latency_ms``; ``source`` where the figures come from).
        seconds: model id -> wall time of the whole scan (every slice, test-time flipping included).
        backends: model id -> where it ran on this scan (:mod:`seg_core.backends`).
    """
    rows = []
    for model_id, cost in costs.items():
        energy, latency = cost.get("energy_mj"), cost.get("latency_ms")
        rows.append(
            {
                "model": model_id,
                "parameters (M)": _scaled(cost.get("params"), 1e6, 3),
                "MACs (G)": _scaled(cost.get("macs"), 1e9, 3),
                "SOPs (G)": _scaled(cost.get("sops"), 1e9, 3) or 0.0,  # a conventional net fires no spikes
                "energy_mj": None if energy is None else round(energy, 4),
                "latency_ms": None if latency is None else round(latency, 1),
                "this scan (s)": round(seconds[model_id], 3),
                "backend": (backends or {}).get(model_id, ""),
                "source": cost.get("source", ""),
            }
        )
    columns = ["model", "parameters (M)", "MACs (G)", "SOPs (G)", "energy_mj", "latency_ms", "this scan (s)", "backend", "source"]
    return pd.DataFrame(rows, columns=columns)
