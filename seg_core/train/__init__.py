"""Training: ``python -m seg_core train --arch unet --dataset figshare --data-root ../shared/data``.

What happens, in order:

1. The committed split (``splits/<dataset>.json``) gives the train and validation groups; test is
   never read here.
2. Slices are normalised with the intensity normaliser recorded in the config and resized to the
   training size once, then cached under ``cache/`` as ``.npz`` (no pickle) so later epochs and
   resumed runs skip decoding (:mod:`~seg_core.train.arrays`).
3. Each epoch draws MONAI augmentations (flip, affine, intensity; :mod:`~seg_core.train.augment`),
   optimises Dice + BCE (``monai.losses.DiceCELoss``) with AdamW (:mod:`~seg_core.train.loop`), then
   measures validation per-image Dice (:mod:`~seg_core.train.selection`); the learning rate halves
   on a plateau (:mod:`~seg_core.train.schedule`) and training stops early when validation Dice
   stops improving.
4. Every epoch writes a checkpoint (``runs/<id>/checkpoint.pt``: tensors and numbers only, read
   back with ``weights_only=True``; :mod:`~seg_core.train.checkpoint`) so ``--resume`` continues
   where a killed run stopped; the best validation epoch is exported to ``weights/<id>/`` in the Hub
   layout with its model card, and the whole run's cost is added to it (:mod:`~seg_core.train.record`).

Every setting is a field of :class:`~seg_core.train.config.TrainConfig`; the training queue that
runs every architecture under one protocol is :mod:`seg_core.train.zoo`.

Names are imported lazily, so reading a setting (``seg_core.train.config``) does not load the loop.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "seg_core.train.config",
    "add_train_arguments": "seg_core.train.config",
    "command_line": "seg_core.train.config",
    "config_from_args": "seg_core.train.config",
    "CACHE_DIR": "seg_core.train.arrays",
    "load_arrays": "seg_core.train.arrays",
    "AUGMENTATIONS": "seg_core.train.augment",
    "augmentation": "seg_core.train.augment",
    "augmented_batch": "seg_core.train.augment",
    "_one": "seg_core.train.augment",
    "validate": "seg_core.train.selection",
    "recalibrate_batchnorm": "seg_core.train.selection",
    "score_epoch": "seg_core.train.selection",
    "SCHEDULES": "seg_core.train.schedule",
    "budget_learning_rate": "seg_core.train.schedule",
    "distillation_loss": "seg_core.train.schedule",
    "RUNS_DIR": "seg_core.train.checkpoint",
    "EnergyMeter": "seg_core.train.meter",
    "export": "seg_core.train.record",
    "seed_everything": "seg_core.train.loop",
    "train": "seg_core.train.loop",
    "fit_closed_form": "seg_core.train.loop",
    "train_one_epoch": "seg_core.train.loop",
}

__all__ = sorted(name for name in _EXPORTS if not name.startswith("_"))


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'seg_core.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
