"""The training run: set up, then one closed-form fit or epochs of gradient steps until a stop.

:func:`train` reads top to bottom: seed, load the split's arrays, build the network, then either
:func:`fit_closed_form` (baselines without gradients) or :func:`train_by_gradient`, whose epochs are
:func:`train_one_epoch`, :func:`~seg_core.train.selection.score_epoch` and a checkpoint each.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from seg_core.data import load_split, open_dataset
from seg_core.models import ModelSpec, create_model, get_spec
from seg_core.train.arrays import load_arrays
from seg_core.train.augment import augmentation, augmented_batch
from seg_core.train.checkpoint import (
    CpuClock,
    Optimisation,
    RunState,
    checkpoint_path,
    record_budget_spent,
    resume_from_checkpoint,
    save_checkpoint,
)
from seg_core.train.config import TrainConfig
from seg_core.train.meter import EnergyMeter
from seg_core.train.record import export, record_training_totals
from seg_core.train.schedule import budget_learning_rate, distillation_loss, load_teacher, make_scheduler, step_scheduler
from seg_core.train.selection import score_epoch, validate
from seg_core.weights import load_model

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (weight initialisation, shuffling)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Run:
    """What one training run works with, set up once: its settings, the network's, the data and the device."""

    config: TrainConfig
    spec: ModelSpec
    modalities: list[str]
    model_config: dict[str, Any]
    train_arrays: dict[str, np.ndarray]
    val_arrays: dict[str, np.ndarray]
    device: torch.device
    # Volumetric datasets are validated per patient, 2D ones per image.
    per_volume: bool


def resolve_device(name: str) -> torch.device:
    """``"auto"``: the GPU where there is one, else the CPU; any other name as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_model(config: TrainConfig, spec: ModelSpec, modalities: list[str], device: torch.device):
    """The network to train and its settings: the preset's, overridden by ``config.model_config``.

    A fine-tune (``init_from``) starts from the trained weights, with their architecture settings
    unless these are given explicitly; the preset only seeds fresh models.
    """
    if config.preset not in ("lite", "paper", ""):
        raise ValueError(f"unknown preset {config.preset!r}: use 'lite', 'paper' or ''")
    preset = {"lite": spec.lite_config, "paper": spec.paper_config, "": {}}[config.preset]
    base = {} if config.init_from else dict(preset)
    model_config = {**base, **config.model_config, "in_channels": len(modalities)}
    model_config.pop("modalities", None)
    if not config.init_from:
        return create_model(config.arch, **model_config).to(device), model_config
    initial = load_model(config.init_from)
    model_config = {**initial.config.get("model_config", {}), **model_config}
    model = create_model(config.arch, **model_config).to(device)
    model.load_state_dict(initial.model.state_dict())
    log.info("initialised from %s", config.init_from)
    return model, model_config


def train(config: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) training; returns the summary written to ``weights/<id>/metrics.json``."""
    spec = get_spec(config.arch)
    seed_everything(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device)
    split = load_split(config.dataset)
    train_arrays = load_arrays(config, "train", split["train"])
    val_arrays = load_arrays(config, "val", split["val"])
    dataset = open_dataset(config.dataset, config.data_root)
    modalities = list(config.model_config.get("modalities", dataset.modalities))
    model, model_config = build_model(config, spec, modalities, device)
    run = Run(config, spec, modalities, model_config, train_arrays, val_arrays, device, bool(dataset.volumetric))
    if spec.trainable:
        return train_by_gradient(model, run, resume, progress)
    # Closed-form baselines: one fit, no gradient loop (and no parameters to optimise).
    with EnergyMeter(config.carbon_country) as meter:
        summary = fit_closed_form(model, config, spec, modalities, model_config, train_arrays, val_arrays, device, run.per_volume)
    history = summary.pop("history")
    record_training_totals(config, dict(meter.spent), history, 1, "closed_form")
    return {**summary, "stopped": "closed_form", "cpu_minutes": round(history[-1]["cpu_s"] / 60, 2), **meter.spent}


def fit_closed_form(
    model, config: TrainConfig, spec, modalities, model_config, train_arrays, val_arrays, device, per_volume: bool = False
) -> dict[str, Any]:
    """Fit a model with ``spec.trainable`` False (``model.fit(images, masks)``) once, validate it and export it.

    The cached float16 images go in as they are: ``fit`` converts each batch to float32 itself, so the
    whole training set is never held twice.
    """
    start, cpu_start = time.monotonic(), time.process_time()
    model.fit(train_arrays["images"], train_arrays["masks"])
    val_dice = validate(model, val_arrays, device, config.batch_size * 2, per_volume=per_volume)
    elapsed = time.monotonic() - start
    log.info("fitted %s in closed form: val Dice %.4f (%.0f s)", config.arch, val_dice, elapsed)
    level = "volume" if per_volume else "image"
    history = [
        {"epoch": 0, "val_dice": val_dice, "val_level": level, "elapsed_s": elapsed, "cpu_s": time.process_time() - cpu_start}
    ]
    export(model, config, spec, modalities, model_config, history, val_dice, 0, elapsed)
    return {"model_id": config.model_id, "best_val_dice": val_dice, "best_epoch": 0, "epochs_run": 1, "history": history}


def make_optimisation(model: torch.nn.Module, config: TrainConfig) -> Optimisation:
    """AdamW, the weight average (``ema_decay``) and the scheduler of ``config`` around ``model``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if not 0.0 <= config.ema_decay < 1.0:
        raise ValueError(f"ema_decay must lie in [0, 1), got {config.ema_decay}")
    averaged = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True) if config.ema_decay else None
    )
    return Optimisation(model, optimizer, make_scheduler(config, optimizer), averaged)


def train_by_gradient(model: torch.nn.Module, run: Run, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Epochs of gradient training from scratch or from the checkpoint, until a stop; returns the run's summary."""
    from monai.losses import DiceCELoss

    config = run.config
    parts = make_optimisation(model, config)
    teacher = load_teacher(config, run.device)
    loss_function = DiceCELoss(sigmoid=True, smooth_nr=1e-5, smooth_dr=1e-5)
    path = checkpoint_path(config)
    state = RunState()
    if resume and path.exists():
        state = resume_from_checkpoint(path, parts, run.device)
        log.info(
            "resumed %s at epoch %d (best val Dice %.4f at epoch %d)",
            config.model_id,
            state.next_epoch,
            state.best_dice,
            state.best_epoch,
        )
    if config.crop and not 16 <= config.crop <= config.size:
        raise ValueError(f"crop {config.crop} must lie between 16 and the training size {config.size}")
    transform = augmentation(config.seed, config.crop, config.augment)
    wall_start, clock = time.monotonic(), CpuClock(state.cpu_s)
    meter = EnergyMeter(config.carbon_country, state.energy)
    with meter:
        stop_reason = run_epochs(parts, run, state, transform, loss_function, teacher, wall_start, clock, meter, progress)
    if stop_reason == "budget":
        record_budget_spent(path, clock, run.device)
    energy = dict(meter.spent)
    # Epochs completed, resumed runs included (an early stop or the time budget breaks before the
    # loop's current epoch runs, so the loop variable would count one too many).
    epochs_run = len(state.history)
    record_training_totals(config, energy, state.history, epochs_run, stop_reason)
    return {
        "model_id": config.model_id,
        "best_val_dice": state.best_dice,
        "best_epoch": state.best_epoch,
        "epochs_run": epochs_run,
        "stopped": stop_reason,
        "cpu_minutes": round(state.history[-1]["cpu_s"] / 60, 2) if state.history else 0.0,
        **energy,
    }


def run_epochs(
    parts: Optimisation,
    run: Run,
    state: RunState,
    transform,
    loss_function,
    teacher: torch.nn.Module | None,
    wall_start: float,
    clock: CpuClock,
    meter: EnergyMeter,
    progress: bool,
) -> str:
    """Train, validate, export an improvement and checkpoint, epoch after epoch; returns why it stopped.

    ``state`` is updated in place (best epoch, history); its ``elapsed_s`` stays the earlier runs' time.
    """
    config = run.config
    budget_s = config.budget_cpu_minutes * 60
    path = checkpoint_path(config)
    for epoch in range(state.next_epoch, config.epochs):
        reason = stop_before_epoch(config, epoch, state.best_epoch, wall_start, clock)
        if reason:
            return reason
        losses = train_one_epoch(parts, run, epoch, transform, loss_function, teacher, clock, progress)
        if not losses:
            return "budget"  # spent before this epoch's first step
        scored, val_dice = score_epoch(
            parts.model,
            parts.averaged,
            run.train_arrays,
            run.val_arrays,
            run.device,
            config.batch_size,
            config.bf16,
            run.per_volume,
        )
        step_scheduler(parts.scheduler, config.schedule, val_dice)
        elapsed = state.elapsed_s + time.monotonic() - wall_start
        record = epoch_record(epoch, losses, val_dice, run.per_volume, parts.optimizer.param_groups[0]["lr"], elapsed, clock)
        state.history.append(record)
        if val_dice > state.best_dice:
            state.best_dice, state.best_epoch = val_dice, epoch
            export(scored, config, run.spec, run.modalities, run.model_config, state.history, val_dice, epoch, elapsed)
        save_checkpoint(path, parts, epoch, state.best_dice, state.best_epoch, elapsed, state.history, clock, meter)
        if budget_s and clock.spent() >= budget_s:
            return "budget"
    return "epochs"


def stop_before_epoch(config: TrainConfig, epoch: int, best_epoch: int, wall_start: float, clock: CpuClock) -> str | None:
    """Why the run stops before ``epoch`` (``early_stop``, ``max_minutes`` or ``budget``), or ``None`` to go on."""
    if best_epoch >= 0 and epoch - best_epoch > config.patience:
        log.info("early stop: no validation improvement for %d epochs", config.patience)
        return "early_stop"
    if config.max_minutes and (time.monotonic() - wall_start) / 60 > config.max_minutes:
        log.info("time budget of %.1f min spent; resume with --resume", config.max_minutes)
        return "max_minutes"
    if config.budget_cpu_minutes and clock.spent() >= config.budget_cpu_minutes * 60:
        return "budget"
    return None


def epoch_record(
    epoch: int, losses: list[float], val_dice: float, per_volume: bool, lr: float, elapsed: float, clock: CpuClock
) -> dict[str, Any]:
    """The epoch's row of the training history (logged as it is made)."""
    record = {
        "epoch": epoch,
        "loss": float(np.mean(losses)),
        "val_dice": val_dice,
        "val_level": "volume" if per_volume else "image",
        "lr": lr,
        "elapsed_s": elapsed,
        "cpu_s": clock.spent(),
        "steps": len(losses),
    }
    log.info(
        "epoch %d loss %.4f val Dice %.4f (%s) lr %.2e (%.0f s, %.1f CPU-min)",
        epoch,
        np.mean(losses),
        val_dice,
        "per volume" if per_volume else "per image",
        lr,
        elapsed,
        clock.spent() / 60,
    )
    return record


def train_one_epoch(
    parts: Optimisation,
    run: Run,
    epoch: int,
    transform,
    loss_function,
    teacher: torch.nn.Module | None,
    clock: CpuClock,
    progress: bool = False,
) -> list[float]:
    """One pass over the training slices in this epoch's order; returns the loss of every optimiser step.

    Only whole batches are drawn. A CPU budget that runs out inside the epoch ends it early (what was
    learnt is still validated); an empty list means it was spent before the first step.
    """
    from tqdm import tqdm

    config = run.config
    budget_s = config.budget_cpu_minutes * 60
    # Reseeded per epoch, so a resumed run draws the same augmentations as an unbroken one.
    transform.set_random_state(seed=config.seed + epoch)
    parts.model.train()
    n_train = len(run.train_arrays["images"])
    order = np.random.default_rng(config.seed + epoch).permutation(n_train)
    losses = []
    batches = range(0, n_train - config.batch_size + 1, config.batch_size)
    for start in tqdm(batches, desc=f"epoch {epoch}", disable=not progress, leave=False):
        if budget_s:
            if clock.spent() >= budget_s:
                break
            if config.schedule == "cosine_budget":
                for group in parts.optimizer.param_groups:
                    group["lr"] = budget_learning_rate(config.lr, clock.spent() / budget_s)
        images, masks = augmented_batch(run.train_arrays, order[start : start + config.batch_size], transform, run.device)
        loss = batch_loss(parts.model, teacher, loss_function, images, masks, config)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()
        if parts.averaged is not None:
            parts.averaged.update_parameters(parts.model)
        losses.append(loss.item())
    return losses


def batch_loss(
    model: torch.nn.Module,
    teacher: torch.nn.Module | None,
    loss_function,
    images: torch.Tensor,
    masks: torch.Tensor,
    config: TrainConfig,
) -> torch.Tensor:
    """Dice + cross-entropy against the masks, plus the distillation term when there is a teacher.

    The forward passes run under bfloat16 autocast with ``config.bf16``; the losses are taken in float32.
    """
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=config.bf16):
        logits = model(images)
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(images).float()
    loss = loss_function(logits.float(), (masks >= 0.5).float())
    if teacher is not None:
        loss = loss + config.distill_weight * distillation_loss(logits.float(), teacher_logits, config.distill_temperature)
    return loss
