"""Internal names rendered for people: metric keys, MRI sequences, data sets and network layers.

The engine's names (``energy_mj``, ``t1c``, ``stages.0.0``, ``metrics.json``) are exact and stable,
which is what code needs; a clinician reading the app or a report needs words. Every page and report
that shows one of these names passes it through this module, so one table decides how each reads.
No streamlit here: the CLI's text and the REST API's messages use the same words.

Example:
    >>> metric_name("energy_mj")
    'Energy (mJ)'
    >>> sequence_name("t1c")
    'T1 contrast-enhanced'
    >>> layer_name("stages.0.0", family="spiking_resnet")
    'first block, early features'
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "DATASET_NAMES",
    "METRIC_NAMES",
    "SEQUENCE_NAMES",
    "dataset_name",
    "file_description",
    "layer_name",
    "metric_name",
    "sequence_list",
    "sequence_name",
]

#: Sequence (modality) names as a radiologist writes them. ``unspecified`` is what a reader records
#: for a grayscale image whose contrast the file does not say: say exactly that, never guess.
SEQUENCE_NAMES = {
    "t1": "T1",
    "t1c": "T1 contrast-enhanced",
    "t2": "T2",
    "flair": "FLAIR",
    "unspecified": "sequence not stated",
}

#: Metric and cost keys of ``metrics.json``, the leaderboard and the comparison tables, with units.
METRIC_NAMES = {
    "dice": "Dice",
    "dice_mean": "Dice (mean)",
    "dice_std": "Dice (spread)",
    "dice_median": "Dice (median)",
    "volume_dice": "Dice per patient (volume)",
    "volume_dice_mean": "Dice per patient (volume)",
    "primary_mean": "Test Dice",
    "iou": "IoU (overlap)",
    "iou_mean": "IoU (overlap)",
    "hd95": "Boundary distance, 95th percentile (mm)",
    "hd95_mean": "Boundary distance, 95th percentile (mm)",
    "sensitivity": "Sensitivity (tumor found)",
    "sensitivity_mean": "Sensitivity (tumor found)",
    "precision": "Precision (marked area that is tumor)",
    "precision_mean": "Precision (marked area that is tumor)",
    "specificity": "Specificity (healthy tissue left unmarked)",
    "accuracy": "Accuracy (pixels)",
    "val_dice": "Validation Dice",
    "energy_mj": "Energy (mJ)",
    "ann_energy_mj": "Energy of a conventional network of the same shape (mJ)",
    "latency_ms": "Time (ms)",
    "torch_latency_ms": "Time with PyTorch (ms)",
    "seconds": "Time (s)",
    "params": "Parameters",
    "macs": "Multiply-accumulates",
    "dense_macs": "Multiply-accumulates (dense)",
    "sops": "Synaptic operations",
    "spike_rate": "Spike rate (spikes per neuron per step)",
    "time_steps": "Time steps",
    "train_minutes": "Training time (min)",
    "train_cpu_minutes": "Training CPU time (min)",
    "train_energy_kwh": "Training energy (kWh)",
    "area_mm2": "Area (mm²)",
    "largest_area_mm2": "Largest cross-section (mm²)",
    "volume_ml": "Volume (mL)",
    "tumor_voxels": "Tumor voxels",
    "backend": "Runs on",
}

#: Training data sets, short, as a model's title names them ("U-Net, trained on BraTS volumes").
DATASET_NAMES = {
    "figshare": "Figshare slices",
    "lgg": "LGG slices",
    "brats": "BraTS volumes",
    "brats2015": "BraTS 2015 volumes",
    "coco": "Roboflow slices",
}

# Files people never need to see by name: say what they hold.
_FILE_DESCRIPTIONS = {
    "metrics.json": "the model's recorded test figures",
    "config.json": "the model's settings",
    "model.safetensors": "the model's weights",
    "model.int8.onnx": "the model's compact (8-bit) version",
    "leaderboard.json": "the table of all models' test figures",
    "README.md": "the model card",
}

_ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")


def _ordinal(index: int) -> str:
    return _ORDINALS[index] if 0 <= index < len(_ORDINALS) else f"{index + 1}th"


def sequence_name(modality: str) -> str:
    """``"t1c"`` -> ``"T1 contrast-enhanced"``; a name with no entry is shown upper-case as given."""
    return SEQUENCE_NAMES.get(str(modality).lower(), str(modality).upper())


def sequence_list(modalities: Iterable[str]) -> str:
    """``("flair", "t1c")`` -> ``"FLAIR and T1 contrast-enhanced"`` (an English list, no brackets)."""
    names = [sequence_name(m) for m in modalities]
    if not names:
        return "no sequence"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def metric_name(key: str) -> str:
    """``"energy_mj"`` -> ``"Energy (mJ)"``; an unknown key becomes words, its unit suffix in brackets."""
    if key in METRIC_NAMES:
        return METRIC_NAMES[key]
    units = {"_mj": " (mJ)", "_ms": " (ms)", "_s": " (s)", "_ml": " (mL)", "_mm2": " (mm²)", "_mm": " (mm)", "_kwh": " (kWh)"}
    for suffix, unit in units.items():
        if key.endswith(suffix):
            return key[: -len(suffix)].replace("_", " ").capitalize() + unit
    return key.replace("_", " ").capitalize()


def dataset_name(dataset: str) -> str:
    """``"brats"`` -> ``"BraTS volumes"``."""
    return DATASET_NAMES.get(dataset, f"{dataset} data" if dataset else "unrecorded data")


def file_description(filename: str) -> str:
    """``"metrics.json"`` -> ``"the model's recorded test figures"``: what a file holds, not its name."""
    return _FILE_DESCRIPTIONS.get(filename.rsplit("/", 1)[-1], "a file of the model")


# What each depth of a network computes, in words; a block's role follows from where it sits.
_ROLE_BY_FRACTION = ((0.34, "early features"), (0.67, "middle features"), (1.01, "deep features"))


def _role(position: int, count: int) -> str:
    fraction = (position + 1) / max(count, 1)
    return next(role for limit, role in _ROLE_BY_FRACTION if fraction <= limit)


# Layer-path words of the zoo's families (seg_core/models): the top-level module names they use.
_PART_WORDS = {
    "stem": "input layer",
    "encoder": "encoder",
    "encoders": "encoder",
    "down": "encoder",
    "downs": "encoder",
    "enc": "encoder",
    "decoder": "decoder",
    "decoders": "decoder",
    "up": "decoder",
    "ups": "decoder",
    "dec": "decoder",
    "bottleneck": "bottleneck (deepest features)",
    "bridge": "bottleneck (deepest features)",
    "center": "bottleneck (deepest features)",
    "aspp": "multi-scale context (ASPP)",
    "pyramid": "multi-scale context",
    "head": "output layer",
    "final": "output layer",
    "out": "output layer",
    "classifier": "output layer",
    "gate": "attention gate",
    "gates": "attention gate",
    "attention": "attention",
    "temporal_attention": "temporal attention",
    "channel_attention": "channel attention",
    "spatial_attention": "spatial attention",
}


def layer_name(path: str, family: str = "", counts: dict[str, int] | None = None) -> str:
    """A layer path of a model (``named_modules`` name) in words, for every family of the zoo.

    The first integer in the path is the block's position along the network (``stages.0.0`` is the
    first stage's first block); its role (early / middle / deep features) follows from that position
    over the number of blocks at that level, given in ``counts`` (``{"stages": 4}``) where known,
    else assumed 4 (the depth of every network in the zoo).

    Args:
        path: e.g. ``"stages.0.0"``, ``"encoders.2"``, ``"decoder.1.conv"``, ``"bottleneck"``.
        family: the model's family (``ModelSpec.family``), which only changes the words for stages.
        counts: number of children of each top-level container, for the early/middle/deep role.

    Returns:
        e.g. ``"first block, early features"``, ``"third encoder block, deep features"``.
    """
    if not path:
        return "whole network"
    parts = path.split(".")
    top = parts[0]
    indices = [int(p) for p in parts[1:] if p.isdigit()]
    count = (counts or {}).get(top, 4)
    word = _PART_WORDS.get(top) or _PART_WORDS.get(re.sub(r"\d+$", "", top))
    if top in ("stages", "layers", "blocks", "layer"):
        word = "block"
    if indices and word not in ("input layer", "output layer"):
        position = indices[0]
        noun = word or top.replace("_", " ")
        if noun.startswith("bottleneck"):
            return noun
        role = _role(position, count)
        if noun == "decoder":
            role = {"early features": "coarse outline", "middle features": "refining", "deep features": "fine detail"}[role]
        return f"{_ordinal(position)} {noun}{'' if noun.endswith('block') else ' block'}, {role}"
    return word or top.replace("_", " ")
