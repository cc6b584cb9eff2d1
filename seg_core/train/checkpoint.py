"""Checkpoint and resume: everything a killed run needs to continue as if it had never stopped.

A checkpoint (``runs/<id>/checkpoint.pt``) holds tensors and numbers only, so it is read back with
``weights_only=True``: the model, its weight average, optimiser and scheduler states, the global
random states of Python, NumPy and torch, and the run's numbers (epoch, best epoch, wall and CPU
time, history, energy) as JSON strings.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel

from seg_core.train.config import TrainConfig
from seg_core.train.meter import EnergyMeter

ROOT = Path(__file__).resolve().parents[2]
RUNS_DIR = ROOT / "runs"


def checkpoint_path(config: TrainConfig) -> Path:
    """``<checkpoint_dir>/checkpoint.pt``, by default under ``runs/<id>/``."""
    return (Path(config.checkpoint_dir) if config.checkpoint_dir else RUNS_DIR / config.model_id) / "checkpoint.pt"


@dataclass
class Optimisation:
    """What a gradient run changes step by step, all of it stored in the checkpoint."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    # ``None`` for ``cosine_budget``, whose learning rate is set per step from the CPU time spent.
    scheduler: Any | None = None
    # The exponential moving average of the weights (``--ema-decay``), or ``None``.
    averaged: AveragedModel | None = None


@dataclass
class RunState:
    """Where a run stands between epochs: the numbers a checkpoint stores beside the tensors."""

    next_epoch: int = 0
    best_dice: float = -1.0
    best_epoch: int = -1
    # Wall-clock and CPU seconds of the earlier runs this one resumes.
    elapsed_s: float = 0.0
    cpu_s: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    energy: dict[str, Any] = field(default_factory=dict)


class CpuClock:
    """CPU time of this process (all its threads) spent on the run, earlier resumed runs included.

    CPU time rather than wall time is the budget's measure: it is fair across architectures even on
    a machine shared with other jobs.
    """

    def __init__(self, before_s: float = 0.0) -> None:
        self.before_s = before_s
        self._start = time.process_time()

    def spent(self) -> float:
        return self.before_s + time.process_time() - self._start


def random_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's global generator states, storable under ``weights_only=True``."""
    numpy_state = np.random.get_state()
    return {
        "torch_rng": torch.get_rng_state(),
        "python_rng_json": json.dumps(random.getstate()),
        "numpy_rng_keys": torch.from_numpy(numpy_state[1].astype(np.int64)),
        "numpy_rng_json": json.dumps([numpy_state[0], *[float(v) if isinstance(v, float) else int(v) for v in numpy_state[2:]]]),
    }


def restore_random_states(checkpoint: dict[str, Any]) -> None:
    """Set the global generators to the states :func:`random_states` stored (older checkpoints hold torch's only)."""
    torch.set_rng_state(checkpoint["torch_rng"])
    if "python_rng_json" in checkpoint:
        version, internal, gauss = json.loads(checkpoint["python_rng_json"])
        random.setstate((version, tuple(internal), gauss))
        name, position, has_gauss, cached = json.loads(checkpoint["numpy_rng_json"])
        np.random.set_state((name, checkpoint["numpy_rng_keys"].numpy().astype(np.uint32), position, has_gauss, cached))


def _save_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """Write to a temporary file first, so a run killed mid-write leaves the previous checkpoint whole."""
    torch.save(checkpoint, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def save_checkpoint(
    path: Path,
    parts: Optimisation,
    epoch: int,
    best_dice: float,
    best_epoch: int,
    elapsed_s: float,
    history: list[dict[str, Any]],
    clock: CpuClock,
    meter: EnergyMeter,
) -> None:
    """Store the state after ``epoch``; the CPU time and energy are read last, so they include saving the tensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "model": parts.model.state_dict(),
        **({"averaged": parts.averaged.state_dict()} if parts.averaged is not None else {}),
        "optimizer": parts.optimizer.state_dict(),
        **({"scheduler": parts.scheduler.state_dict()} if parts.scheduler is not None else {}),
        **random_states(),
        "epoch": epoch,
        "best_dice": best_dice,
        "best_epoch": best_epoch,
        "elapsed_s": elapsed_s,
        "cpu_s": clock.spent(),
        "history_json": json.dumps(history),
        "energy_json": json.dumps(meter.totals()),
    }
    _save_atomically(checkpoint, path)


def resume_from_checkpoint(path: Path, parts: Optimisation, device: torch.device) -> RunState:
    """Load the checkpoint at ``path`` into ``parts`` and the global random generators; returns where the run stands.

    Raises:
        ValueError: the run averages weights but the checkpoint was written without an average.
    """
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    parts.model.load_state_dict(checkpoint["model"])
    parts.optimizer.load_state_dict(checkpoint["optimizer"])
    if parts.scheduler is not None:
        parts.scheduler.load_state_dict(checkpoint["scheduler"])
    if parts.averaged is not None:
        if "averaged" not in checkpoint:
            raise ValueError(f"{path} was written without --ema-decay; resume it without, or start afresh")
        parts.averaged.load_state_dict(checkpoint["averaged"])
    restore_random_states(checkpoint)
    return RunState(
        next_epoch=int(checkpoint["epoch"]) + 1,
        best_dice=float(checkpoint["best_dice"]),
        best_epoch=int(checkpoint["best_epoch"]),
        elapsed_s=float(checkpoint["elapsed_s"]),
        cpu_s=float(checkpoint.get("cpu_s", 0.0)),
        history=json.loads(checkpoint["history_json"]),
        energy=json.loads(checkpoint.get("energy_json", "{}")),
    )


def record_budget_spent(path: Path, clock: CpuClock, device: torch.device) -> None:
    """Raise the checkpoint's CPU time to all that this run has spent, when a budget stopped it.

    The CPU time spent after the last checkpoint (saving it, setting up the next epoch) counts too:
    recorded, a resumed run does not train a step more on a spent budget.
    """
    if not path.exists():
        return
    checkpoint = torch.load(path, map_location=device, weights_only=True)
    checkpoint["cpu_s"] = max(float(checkpoint.get("cpu_s", 0.0)), clock.spent())
    _save_atomically(checkpoint, path)
