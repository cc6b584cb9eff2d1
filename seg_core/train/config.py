"""Every setting of a training run (:class:`TrainConfig`) and the exact command line that gives it.

The weights' ``config.json`` stores the settings; the model card prints :func:`command_line` of
them, and :func:`config_from_args` turns the ``train`` command's arguments back into settings, so a
card's command reproduces its run flag for flag (a test parses every shipped card).
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass, field, fields
from typing import Any

from seg_core.preprocess import IntensityNormalizer

__all__ = ["TrainConfig", "command_line", "config_from_args", "add_train_arguments"]


@dataclass
class TrainConfig:
    """Every setting of a training run; stored in the weights' config so the run can be repeated."""

    arch: str = "unet"
    dataset: str = "figshare"
    data_root: str = "../shared/data"
    model_config: dict[str, Any] = field(default_factory=dict)
    # Starting point of the architecture settings, overridden by ``model_config``: the registry's
    # "lite" (CPU-sized) or "paper" configuration, or "" for the constructor's defaults.
    preset: str = "lite"
    size: int = 128
    epochs: int = 60
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10
    plateau_patience: int = 3
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    max_minutes: float = 0.0
    normalization: dict[str, Any] = field(default_factory=lambda: IntensityNormalizer().to_dict())
    out_id: str = ""
    # "" for the repository's weights/ folder.
    weights_dir: str = ""
    init_from: str = ""
    # "plateau": halve the learning rate when validation Dice stalls; "cosine": anneal to zero over
    # ``epochs`` (better for fine-tuning with a known budget).
    schedule: str = "plateau"
    # bfloat16 autocast: 2-3x faster convolutions on CPUs with AVX-512 BF16 and on GPUs; weights,
    # BatchNorm statistics and the loss stay float32.
    bf16: bool = False
    # Train on random crops of this side (0: whole images) of images cached at ``size``.
    crop: int = 0
    # "standard" or "strong" (wider affine range, blur, simulated low resolution: see ``augmentation``).
    augment: str = "standard"
    # Exponential moving average of the weights (and BatchNorm statistics) with this decay per
    # optimiser step, 0 for none. Validation, early stopping and the exported weights then use the
    # average, which smooths the step-to-step noise of small-batch training (Polyak & Juditsky 1992;
    # the "model EMA" of timm and of Tan & Le's EfficientNet). Its horizon is about 1 / (1 - decay) steps.
    ema_decay: float = 0.0
    # Country whose grid carbon intensity codecarbon uses to turn measured energy (kWh) into CO2eq.
    carbon_country: str = "DEU"
    # Budget in CPU-minutes of this process (all its threads), summed over resumed runs: the measure
    # of equal budgets across architectures, fair even on a machine shared with other jobs. 0: none.
    # With ``schedule="cosine_budget"`` the learning rate anneals to zero as the budget is spent.
    budget_cpu_minutes: float = 0.0
    # Knowledge distillation (Hinton et al. 2015): the trained weights of a teacher (id or folder);
    # the loss adds ``distill_weight`` x BCE between the student's and the teacher's tumor
    # probabilities, both softened by ``distill_temperature``.
    teacher: str = ""
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    # Where checkpoints go (default ``runs/<id>``); outside git.
    checkpoint_dir: str = ""

    @property
    def model_id(self) -> str:
        return self.out_id or f"{self.arch}.{self.dataset}"


# Flags whose value is JSON.
_JSON_FIELDS = ("model_config", "normalization")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def command_line(training: dict[str, Any], data_root: str | None = None) -> str:
    """The ``python -m seg_core train`` command for the settings ``training`` (a config's record).

    Every field of :class:`TrainConfig` is written, defaults included, so nothing is left implicit;
    settings that an older record lacks take today's defaults. ``data_root`` replaces the recorded one.
    """
    defaults = TrainConfig()
    parts = ["python -m seg_core train"]
    for item in fields(TrainConfig):
        value = training.get(item.name, getattr(defaults, item.name))
        if item.name == "data_root" and data_root is not None:
            value = data_root
        if item.name == "preset" and value == "":
            value = "defaults"
        if isinstance(value, bool):
            if value:
                parts.append(_flag(item.name))
            continue
        text = json.dumps(value, sort_keys=True) if item.name in _JSON_FIELDS else str(value)
        parts.append(f"{_flag(item.name)} {shlex.quote(text)}")
    return " \\\n    ".join(parts)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` command's flags: one per :class:`TrainConfig` field, plus how to run."""
    defaults = TrainConfig()
    help_text = {
        "arch": "registry name, e.g. unet",
        "dataset": "figshare, lgg, brats ...",
        "data_root": "folder holding the dataset folders (e.g. ../shared/data)",
        "model_config": "architecture settings as JSON",
        "preset": "architecture settings to start from (lite: CPU-sized; paper: the published sizes; defaults)",
        "size": "training resolution in pixels (square)",
        "patience": "early stopping: epochs without validation gain",
        "threads": "CPU threads (0: PyTorch's default)",
        "max_minutes": "stop after this many wall-clock minutes (resume later)",
        "normalization": 'intensity normalisation as JSON, e.g. {"kind": "zscore_head", "scope": "volume"}',
        "out_id": "weights id (default <arch>.<dataset>)",
        "weights_dir": "where to write the weights folder (default weights/)",
        "init_from": "start from these trained weights (id or folder), e.g. to fine-tune",
        "schedule": "learning-rate schedule (cosine_budget: anneal to zero as the CPU budget is spent)",
        "bf16": "bfloat16 autocast (only where the CPU or GPU computes it natively)",
        "crop": "train on random crops of this side (tumor-centred 2 in 3)",
        "augment": "augmentation strength (strong: wider affine range, blur, simulated low resolution)",
        "ema_decay": "validate and export an exponential moving average of the weights with this decay (0: off)",
        "budget_cpu_minutes": "stop when this process has used this much CPU time, summed over resumed runs",
        "teacher": "distil from these trained weights (id or folder)",
        "checkpoint_dir": "checkpoint folder (default runs/<id>)",
    }
    choices = {
        "preset": ("lite", "paper", "defaults"),
        "schedule": ("plateau", "cosine", "cosine_budget"),
        "augment": ("standard", "strong"),
    }
    for item in fields(TrainConfig):
        default = getattr(defaults, item.name)
        kwargs: dict[str, Any] = {"help": help_text.get(item.name, item.name.replace("_", " "))}
        if isinstance(default, bool):
            parser.add_argument(_flag(item.name), action="store_true", **kwargs)
            continue
        if item.name in ("arch", "dataset", "data_root"):
            kwargs["required"] = True
        elif item.name in _JSON_FIELDS:
            kwargs["type"], kwargs["default"] = json.loads, None
        else:
            kwargs["type"], kwargs["default"] = type(default), default
        if item.name in choices:
            kwargs["choices"] = choices[item.name]
        parser.add_argument(_flag(item.name), **kwargs)
    parser.add_argument("--width", type=int, default=0, help="shorthand for the first-stage channels in --model-config")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars (for logs)")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The :class:`TrainConfig` of parsed ``train`` arguments."""
    values: dict[str, Any] = {}
    for item in fields(TrainConfig):
        value = getattr(args, item.name)
        if value is None:  # a JSON flag not given
            continue
        values[item.name] = value
    if values.get("preset") == "defaults":
        values["preset"] = ""
    if getattr(args, "width", 0):
        values["model_config"] = {**values.get("model_config", {}), "width": args.width}
    return TrainConfig(**values)
