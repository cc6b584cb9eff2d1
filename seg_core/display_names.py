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
    >>> layer_names(["stages.0", "stages.0.0"])["stages.0.0"]
    'first block, early features, part 1'
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
    "layer_names",
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
    "largest_slice_area_mm2": "Largest cross-section (mm²)",
    "slice_area_mm2": "Tumor area per slice (mm²)",
    "largest_slice_index": "Slice with the largest cross-section",
    "slices_with_tumor": "Slices with tumor",
    "volume_ml": "Volume (mL)",
    "voxel_volume_ml": "Volume of one voxel (mL)",
    "spacing_mm": "Pixel spacing (mm)",
    "components": "Separate tumor regions",
    "pixels": "Tumor pixels",
    "tumor_pixels": "Tumor pixels",
    "tumor_voxels": "Tumor voxels",
    "test_dice": "Test Dice",
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
    "model.int8.calibration.json": "the measurements the model's compact (8-bit) version is built from at first use",
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


# The zoo's layer paths (``named_modules`` names of seg_core/models), top level first. Containers of
# numbered blocks take a position and a role; the rest are single named parts.
_NUMBERED = {
    "stages": "block",
    "layers": "block",
    "blocks": "block",
    "encoders": "encoder block",
    "decoders": "decoder step",
    "decoder": "decoder step",
    "gates": "attention gate",
    "bottleneck": "bottleneck (deepest features)",
}
_NAMED = {
    "stem": "input layer, first features",
    "stem_skip": "shortcut from the input layer to the decoder",
    "input_skip": "shortcut from the image to the decoder",
    "low_level": "early features passed to the decoder",
    "bottleneck": "bottleneck (deepest features)",
    "decoder": "decoder (outline at full detail)",
    "aspp": "multi-scale context (ASPP)",
    "pyramid": "multi-scale pyramid",
    "head": "output layer",
    "final": "output layer",
    "classifier": "output layer",
}
_SUB_PARTS = {
    "branches": "branch",
    "project": "merge",
    "proj_out": "merge",
    "scale_attention": "attention over scales",
    "channel_attention": "attention over channels",
    "spatial_attention": "attention over positions",
    "temporal_attention": "attention over time steps",
    "score": "score",
}
# A block's role follows from where it runs along its path: encoders go from edges to context,
# decoders from a coarse outline to fine detail.
_ENCODER_ROLES = ("early features", "middle features", "deep features")
_DECODER_ROLES = ("coarse outline", "refining the outline", "fine detail")


def _role(position: int, count: int, roles: tuple[str, str, str]) -> str:
    # The first block gets the first role, the last the last, those between are spread evenly.
    if count <= 1:
        return roles[0]
    return roles[int(min(position, count - 1) * (len(roles) - 1) / (count - 1) + 0.5)]


def _tail_words(parts: list[str]) -> str:
    words = []
    for part in parts:
        if part.isdigit():
            words.append(f"part {int(part) + 1}")
        else:
            words.append(_SUB_PARTS.get(part, part.replace("_", " ")))
    # "branch" followed by its number reads "branch 2", not "branch, part 2"
    text = ", ".join(words)
    for noun in ("branch",):
        text = re.sub(rf"{noun}, part (\d+)", rf"{noun} \1", text)
    return text


def layer_names(paths: list[str]) -> dict[str, str]:
    """Words for each layer path of one model, e.g. the names :func:`seg_core.explain.gradcam_layers` lists.

    ``paths`` should be in the order the layers run (as ``gradcam_layers`` gives them): a block's
    position is its place in that order among its siblings, so a decoder numbered backwards
    (LinkNet's ``decoders.3`` runs first) still reads "first decoder step". Every name is unique.

    Returns:
        ``{path: words}``, e.g. ``{"stages.0": "first block, early features",
        "stages.0.1": "first block, early features, part 2", "decoders.3": "fourth decoder step, fine detail"}``.
    """
    order: dict[str, list[int]] = {}
    for path in paths:
        parts = path.split(".")
        if parts[0] in _NUMBERED and len(parts) > 1 and parts[1].isdigit():
            seen = order.setdefault(parts[0], [])
            if int(parts[1]) not in seen:
                seen.append(int(parts[1]))
    names = {path: layer_name(path, order) for path in paths}
    # Fall back to the path itself where two paths read alike, so a menu never shows a duplicate.
    counts: dict[str, int] = {}
    for words in names.values():
        counts[words] = counts.get(words, 0) + 1
    return {path: words if counts[words] == 1 else f"{words} ({path})" for path, words in names.items()}


def layer_name(path: str, order: dict[str, list[int]] | None = None) -> str:
    """One layer path of a model of the zoo in words.

    Args:
        path: a ``named_modules`` name, e.g. ``"stages.0.0"``, ``"encoders.2"``, ``"aspp.branches.1"``.
        order: for each numbered container (``stages``, ``encoders``, ``decoders`` ...), its block
            numbers in the order they run (see :func:`layer_names`); default: numbers run 0, 1, 2, 3.

    Returns:
        e.g. ``"first block, early features, part 1"`` for ``stages.0.0``, ``"bottleneck (deepest
        features)"``, ``"multi-scale context (ASPP), branch 2"``.
    """
    if not path:
        return "whole network"
    parts = path.split(".")
    top, rest = parts[0], parts[1:]
    if top in _NUMBERED and rest and rest[0].isdigit():
        number = int(rest[0])
        if top == "bottleneck":
            return f"{_NAMED['bottleneck']}, {_tail_words(rest)}"
        run_order = (order or {}).get(top) or list(range(max(number + 1, 4)))
        position = run_order.index(number) if number in run_order else number
        count = max(len(run_order), max(run_order) + 1, position + 1)  # a partial list still spans the net
        noun = _NUMBERED[top]
        words = f"{_ordinal(position)} {noun}"
        if noun == "attention gate":
            words += f", {_role(position, count, ('coarse', 'middle', 'fine'))} scale"
        else:
            words += f", {_role(position, count, _DECODER_ROLES if noun == 'decoder step' else _ENCODER_ROLES)}"
        return words + (f", {_tail_words(rest[1:])}" if rest[1:] else "")
    base = _NAMED.get(top, top.replace("_", " "))
    return base + (f", {_tail_words(rest)}" if rest else "")
