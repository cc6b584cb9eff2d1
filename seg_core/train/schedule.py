"""Learning-rate schedules and the knowledge-distillation objective."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from seg_core.train.config import TrainConfig
from seg_core.weights import load_model

SCHEDULES = ("plateau", "cosine", "cosine_budget")


def budget_learning_rate(base_lr: float, spent_fraction: float) -> float:
    """Cosine annealing over a budget instead of a number of epochs: ``base_lr`` at 0, 0 when spent."""
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(max(spent_fraction, 0.0), 1.0)))


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer):
    """The epoch-stepped scheduler of ``config.schedule``; ``None`` for ``cosine_budget``, set per step."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if config.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=config.plateau_patience)
    if config.schedule == "cosine_budget":
        if not config.budget_cpu_minutes:
            raise ValueError("schedule 'cosine_budget' anneals over --budget-cpu-minutes; give a budget")
        return None
    raise ValueError(f"unknown schedule {config.schedule!r}: use one of {', '.join(SCHEDULES)}")


def step_scheduler(scheduler, schedule: str, val_dice: float) -> None:
    """Advance an epoch-stepped scheduler after validation (the plateau schedule watches the validation Dice)."""
    if schedule == "plateau":
        scheduler.step(val_dice)
    elif scheduler is not None:
        scheduler.step()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """BCE between softened student and teacher tumor probabilities, scaled by T^2 (Hinton et al. 2015)."""
    soft_targets = torch.sigmoid(teacher_logits / temperature)
    return F.binary_cross_entropy_with_logits(student_logits / temperature, soft_targets) * temperature**2


def load_teacher(config: TrainConfig, device: torch.device) -> torch.nn.Module | None:
    """The frozen teacher network for distillation, or ``None``; it must see the student's inputs."""
    if not config.teacher:
        return None
    # An id is looked up beside this run's own output first: the zoo queue trains the teacher there,
    # and may run from a checkout whose weights/ does not hold it yet.
    beside = Path(config.weights_dir) / config.teacher if config.weights_dir else None
    loaded = load_model(beside if beside is not None and beside.is_dir() else config.teacher)
    if loaded.config.get("normalization") != config.normalization or list(loaded.config["input_size"]) != [config.size] * 2:
        raise ValueError(f"teacher {config.teacher} was trained on other inputs (normalisation or size) than this run")
    teacher = loaded.model.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher
