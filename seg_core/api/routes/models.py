"""``GET /models``: the trained weights with their inputs, test figures and leaderboard place."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from seg_core.api.schemas import LeaderboardEntry, ModelInfo, ModelInputs
from seg_core.api.shared import Segmenters, Settings
from seg_core.evaluate import json_safe
from seg_core.leaderboard import read_leaderboard
from seg_core.models import get_spec
from seg_core.scans import SUPPORTED_FORMATS
from seg_core.weights import METRICS_NAME, WeightsError, read_config

logger = logging.getLogger(__name__)
router = APIRouter()

_TEST_FIGURES = ("n", "groups", "dice_mean", "dice_std", "iou_mean", "hd95_mean", "sensitivity_mean", "precision_mean")


def _leaderboard_entries(board: dict[str, Any]) -> dict[str, LeaderboardEntry]:
    rows = {row["id"]: row for row in board["rows"]}
    entries = {}
    for entry in board.get("datasets", {}).values():
        for rank, model_id in enumerate(entry["ranking"], start=1):
            row = json_safe(rows[model_id])
            fields = {key: row.get(key) for key in LeaderboardEntry.model_fields if key in row}
            entries[model_id] = LeaderboardEntry(rank=rank, of=len(entry["ranking"]), **fields)
    return entries


def _ranked(model_ids: list[str], board: dict[str, Any]) -> list[str]:
    # The leaderboard's order (per data set, best first); models it does not list yet come last.
    order = [model_id for entry in board.get("datasets", {}).values() for model_id in entry["ranking"]]
    return sorted(model_ids, key=lambda model_id: (order.index(model_id) if model_id in order else len(order), model_id))


def _model_info(weights_dir: Path, model_id: str) -> ModelInfo:
    folder = weights_dir / model_id
    config = read_config(folder)
    spec = get_spec(config["architecture"])
    metrics_path = folder / METRICS_NAME
    metrics: dict[str, dict[str, Any]] = {}
    if metrics_path.is_file():
        recorded = json.loads(metrics_path.read_text())
        for key, value in recorded.items():
            if key.startswith("test:") and isinstance(value, dict):
                metrics[key.removeprefix("test:")] = json_safe({k: value[k] for k in _TEST_FIGURES if k in value})
    return ModelInfo(
        id=model_id,
        architecture=config["architecture"],
        title=spec.title,
        spiking=bool(spec.spiking),
        dataset=config.get("dataset"),
        inputs=ModelInputs(
            modalities=list(config["modalities"]), input_size=list(config["input_size"]), formats=SUPPORTED_FORMATS
        ),
        metrics=metrics,
    )


@router.get("/models", response_model=list[ModelInfo], summary="Trained models with their inputs and test figures")
def models(settings: Settings, segmenters: Segmenters) -> list[ModelInfo]:
    board = read_leaderboard(settings.weights_dir) or {"datasets": {}, "rows": []}
    entries = _leaderboard_entries(board)
    infos = []
    for model_id in _ranked(segmenters.ids(), board):
        try:
            info = _model_info(settings.weights_dir, model_id)
        except (WeightsError, KeyError, OSError, ValueError) as error:
            # e.g. a training job is writing this folder right now: list the others.
            logger.warning("Skipping model %s in /models: %s", model_id, error)
            continue
        info.ranking = entries.get(model_id)
        infos.append(info)
    return infos
