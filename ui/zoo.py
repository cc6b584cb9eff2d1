"""The Model zoo page's data, from ``weights/leaderboard.json``: the one ranking the README and the API show too.

``python -m seg_core evaluate --all`` writes that file. Each data set has its own table, ranked by its
primary figure (Dice per patient for LGG and BraTS, per image for figshare); models shipped since the
file was written are named, never ranked by a figure measured another way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from seg_core.display_names import dataset_name, sequence_list
from seg_core.leaderboard import read_leaderboard
from seg_core.models import get_spec, list_models

log = logging.getLogger(__name__)


def _number(value: float | None, scale: float = 1.0, digits: int = 3) -> float | None:
    return None if value is None else round(value / scale, digits)


def leaderboard_tables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{dataset: {"label", "rows" (ranked), "table" (a DataFrame to show), "plotted" (rows with a figure)}}``,
    in the leaderboard's order."""
    by_id = {row["id"]: row for row in board.get("rows", [])}
    tables = {}
    for dataset, entry in board.get("datasets", {}).items():
        rows = [by_id[model_id] for model_id in entry["ranking"]]
        volumetric = entry["primary_metric"] == "volume_dice"
        table = pd.DataFrame(
            [
                {
                    "rank": rank,
                    "model": row["id"] + ("" if row.get("current_split", True) else " (old split)"),
                    "spiking": "yes" if row.get("spiking") else "no",
                    entry["primary_label"]: _number(row.get("primary_mean")),
                    "±": _number(row.get("primary_std")),
                    "test patients" if volumetric else "test images": row.get("primary_n"),
                    "HD95 (mm)": _number(row.get("hd95_mean"), digits=1),
                    "sensitivity": _number(row.get("sensitivity_mean")),
                    "precision": _number(row.get("precision_mean")),
                    "parameters (M)": _number(row.get("params"), 1e6),
                    "energy per slice (mJ)": _number(row.get("energy_mj"), digits=4),
                    "CPU latency (ms)": _number(row.get("latency_ms"), digits=1),
                    "runs on": row.get("backend", "torch"),
                    "training (CPU-min)": _number(row.get("train_cpu_minutes"), digits=1),
                }
                for rank, row in enumerate(rows, start=1)
            ]
        )
        plotted = [row for row in rows if row.get("primary_mean") is not None]
        tables[dataset] = {"label": entry["primary_label"], "rows": rows, "table": table, "plotted": plotted}
    return tables


def ranked_models(tables: dict[str, dict[str, Any]]) -> list[str]:
    """The weights ids of :func:`leaderboard_tables`, table by table, best first."""
    return [row["id"] for entry in tables.values() for row in entry["rows"]]


def unranked_models(weights: list[str], tables: dict[str, dict[str, Any]]) -> list[str]:
    """Shipped weights that are not in the leaderboard yet (shipped since ``evaluate --all`` last ran)."""
    return sorted(set(weights) - set(ranked_models(tables)))


def load_board(weights_dir: Path) -> dict[str, Any] | None:
    """The committed leaderboard, or None when it is missing or unreadable."""
    try:
        return read_leaderboard(weights_dir)
    except (OSError, ValueError) as error:
        log.warning("leaderboard unreadable: %s", error)
        return None


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


def shipped_models_table(weights: list[str]) -> pd.DataFrame:
    """One row per weights id: its architecture, whether it spikes, its sequences and training data."""
    from ui.cache import weights_config  # Streamlit's cache; this module's other functions work without it

    rows = []
    for model_id in weights:
        try:
            config = weights_config(model_id)
            spec = get_spec(config["architecture"])
        except Exception:  # a folder being written by a training run; list it next time
            continue
        rows.append(
            {
                "model": model_id,
                "architecture": spec.title,
                "spiking": "yes" if spec.spiking else "no",
                "sequences": sequence_list(config.get("modalities", [])),
                "trained on": dataset_name(str(config.get("dataset", ""))),
            }
        )
    return pd.DataFrame(rows, columns=["model", "architecture", "spiking", "sequences", "trained on"])


def architectures_table(weights: list[str]) -> pd.DataFrame:
    """Every registered architecture, and the shipped weights of each (``"none yet"``)."""
    rows = []
    for name in list_models():
        spec = get_spec(name)
        rows.append(
            {
                "architecture": name,
                "title": spec.title,
                "family": spec.family,
                "spiking": "yes" if spec.spiking else "no",
                "trained weights": ", ".join(w for w in weights if w.split(".")[0] == name) or "none yet",
            }
        )
    return pd.DataFrame(rows)


def published_table(board: dict[str, Any]) -> pd.DataFrame:
    """The seed projects' published figures quoted in the leaderboard (empty without any)."""
    return pd.DataFrame(board.get("published") or [])
