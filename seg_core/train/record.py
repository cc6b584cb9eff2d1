"""The card record: the best weights exported in the Hub layout, and the whole run's cost added to their metrics."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from seg_core.data import split_sha256
from seg_core.model_card import write_model_card
from seg_core.train.config import TrainConfig
from seg_core.weights import WEIGHTS_DIR, read_config, record_metrics, resolve_weights, save_pretrained


def export(model, config: TrainConfig, spec, modalities, model_config, history, best_dice, best_epoch, elapsed) -> Path:
    """Write the current (best-on-validation) model to ``weights/<id>/``."""
    folder = Path(config.weights_dir or WEIGHTS_DIR) / config.model_id
    weights_config = {
        "id": config.model_id,
        "architecture": config.arch,
        "model_config": model_config,
        "modalities": modalities,
        "input_size": [config.size, config.size],
        "normalization": config.normalization,
        "threshold": 0.5,
        # Weights trained under bfloat16 autocast also run inference that way where the hardware
        # computes bfloat16 natively (2-3x faster); `select` then validates in the same precision.
        "inference_dtype": "bfloat16" if config.bf16 else "float32",
        "dataset": config.dataset,
        # Which split file the run used, so the card can tell when the committed split has moved on.
        "split_sha256": split_sha256(config.dataset),
        "spiking": spec.spiking,
        "training": {**asdict(config), "best_epoch": best_epoch, "elapsed_s": round(elapsed, 1), "hardware": hardware()},
    }
    # A fresh export replaces metrics.json: test figures of earlier weights no longer apply.
    metrics = {"training": {"val_dice_per_image": best_dice, "best_epoch": best_epoch, "history": history}}
    # Fitted baselines keep float32: float16 would move their tree thresholds and neighbour banks.
    save_pretrained(model, weights_config, folder, metrics=metrics, half=spec.trainable)
    write_model_card(folder)
    return folder


def hardware() -> str:
    """What trained the weights, for the card: the GPU's name, or the CPU thread count."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    threads = torch.get_num_threads()
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"


def record_training_totals(
    config: TrainConfig, energy: dict[str, Any], history: list[dict[str, Any]], epochs_run: int, stopped: str = "epochs"
) -> None:
    """Add the whole run's cost (all epochs, resumed runs included) to the exported weights' metrics."""
    folder = Path(config.weights_dir or WEIGHTS_DIR) / config.model_id
    if not (folder / "metrics.json").exists():  # no epoch improved, so nothing was exported
        return
    totals = {
        "epochs_run": epochs_run,
        "stopped": stopped,
        "wall_time_s": round(history[-1]["elapsed_s"], 1) if history else 0.0,
        "cpu_minutes": round(history[-1].get("cpu_s", 0.0) / 60, 2) if history else 0.0,
        "energy": energy,
        # Every epoch's row, not only those up to the best one exported: the whole learning curve, so a
        # reader can see whether validation was still rising when the budget ran out.
        "history": history,
    }
    if config.init_from:
        # A fine-tune's own figures cover only the fine-tuning: keep the initial weights' training record
        # (command settings and totals) beside them, so the card can show the whole lineage and its cost.
        totals["initial"] = initial_training_record(config.init_from)
    record_metrics(folder, "training", totals, merge=True)


def initial_training_record(init_from: str) -> dict[str, Any]:
    """The training record (command settings and totals, no history) of the weights a fine-tune starts from."""
    folder = resolve_weights(init_from)
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    record = {key: value for key, value in metrics.get("training", {}).items() if key != "history"}
    config = read_config(folder)
    return {"id": config.get("id", init_from), "command": config.get("training", {}), **record}
