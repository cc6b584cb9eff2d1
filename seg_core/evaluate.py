"""Evaluation: ``python -m seg_core evaluate --model unet.figshare --dataset figshare --data-root DIR``.

Every image is segmented at its native resolution (the model's resizing is part of what is
evaluated) with the same :class:`~seg_core.inference.Segmenter` the app uses, then compared with the
ground truth by :mod:`seg_core.metrics`. Figures are per image (the mean over slices, each slice
weighted equally) and, for volumetric datasets, per volume (a patient's slices stacked).

``--split test`` reads the committed split; ``--split all`` evaluates every case in the folder, so
any folder in one of the public layouts, including a full-resolution download, can be evaluated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seg_core.batch.splits import GroupEvaluator, split_rows
from seg_core.data import Sample, load_split, open_dataset
from seg_core.inference import Segmenter
from seg_core.metrics import batch_dice, segmentation_metrics, summarize, volume_metrics
from seg_core.postprocess import PostProcessing
from seg_core.scans import Scan
from seg_core.weights import WEIGHTS_DIR, load_model, read_config, record_metrics, resolve_weights
from seg_core.weights import json_safe as json_safe  # moved beside the weights code; callers import it from here too

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "all")
HEADLINE = ("dice", "iou", "hd95", "precision", "sensitivity", "specificity", "accuracy")


def sample_scan(sample: Sample) -> Scan:
    """A one-slice :class:`Scan` of a dataset sample, as a user's upload of that slice would be."""
    spacing = (1.0, *sample.spacing) if sample.spacing else (1.0, 1.0, 1.0)
    return Scan(
        array=sample.image[:, None].astype(np.float32),
        modalities=sample.modalities,
        spacing=spacing,
        name=sample.case_id,
        is_2d=True,
    )


def _groups(dataset, dataset_name: str, split: str) -> list[str]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    present = dataset.groups()
    if split == "all":
        return present
    wanted = load_split(dataset_name)[split]
    return [group for group in wanted if group in set(present)]


def iter_predictions(segmenter: Segmenter, dataset, groups: list[str], limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Per-image metric rows; volumetric datasets also yield one ``level="volume"`` row per patient."""
    count = 0
    for group in groups:
        if dataset.volumetric:
            image, truth, spacing = dataset.load_volume(group)
            spacing = tuple(spacing) if spacing else (1.0, 1.0, 1.0)
            scan = Scan(array=image.astype(np.float32), modalities=tuple(dataset.modalities), spacing=spacing, name=group)
            prediction = segmenter(scan)
            for index in range(truth.shape[0]):
                row = segmentation_metrics(prediction.mask[index], truth[index], spacing=spacing[1:])
                yield {"case": f"{group}/{index}", "group": group, "level": "image", "tumor": bool(truth[index].any()), **row}
            yield {
                "case": group,
                "group": group,
                "level": "volume",
                **volume_metrics(prediction.mask, truth, spacing=spacing),
            }
            count += 1
        else:
            for sample in dataset.samples(group):
                prediction = segmenter(sample_scan(sample))
                row = segmentation_metrics(prediction.mask[0], sample.mask, spacing=sample.spacing)
                yield {"case": sample.case_id, "group": group, "level": "image", "tumor": bool(sample.mask.any()), **row}
                count += 1
                if limit and count >= limit:
                    return
        if limit and count >= limit:
            return


def evaluate(
    model: str,
    dataset_name: str,
    data_root: str | Path,
    split: str = "test",
    limit: int | None = None,
    weights_dir: str | Path = WEIGHTS_DIR,
    workers: int = 1,
    ray: str | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Evaluate weights ``model`` on ``split`` of a dataset folder; returns summary and per-case rows.

    Groups (patients) are the tasks of :func:`seg_core.batch.run_tasks`, as a cohort's cases are, so a
    split runs on a local pool or on Ray with the same figures as the sequential loop.

    Args:
        limit: stop after this many images (2D datasets) or volumes (volumetric ones); runs sequentially.
        workers: worker processes, each holding the model once (1: this process).
        ray: run on Ray Data instead: ``"local"``, ``"auto"`` or a cluster address.
        out: a folder to journal finished groups in; a rerun skips those whose files and model are unchanged.
    """
    folder = resolve_weights(model, weights_dir)
    config = read_config(folder)
    model_id = config.get("id", folder.name)  # as LoadedModel.model_id, without loading it here
    dataset = open_dataset(dataset_name, data_root)
    groups = _groups(dataset, dataset_name, split)
    if not groups:
        raise ValueError(f"no cases of split {split!r} found for {dataset_name} under {data_root}")
    factory = GroupEvaluator(model, dataset_name, str(data_root), str(weights_dir))
    rows = split_rows(factory, groups, dataset.volumetric, limit, workers, ray, out)
    images = [r for r in rows if r["level"] == "image"]
    result: dict[str, Any] = {
        "model": model_id,
        "dataset": dataset_name,
        "split": split,
        "data_root": str(data_root),
        "n": len(images),
        "groups": len(groups),
        # A missed or spurious tumor's HD95 is the image (volume) diagonal: see seg_core.metrics.
        "hd95_convention": "brats-diagonal",
        # Which weights (and int8 graph) these figures describe: a test can then tell stale figures.
        "weights_sha256": (config.get("sha256") or {}).get("model.safetensors"),
        "int8_graph": (config.get("int8") or {}).get("sha256") if (config.get("int8") or {}).get("accepted") else None,
    }
    image_summary = summarize(images)
    for metric in HEADLINE:
        result[f"{metric}_mean"] = image_summary[f"{metric}_mean"]
        result[f"{metric}_std"] = image_summary[f"{metric}_std"]
    result["per_image"] = image_summary
    tumor_images = [r for r in images if r["tumor"]]
    if tumor_images and len(tumor_images) < len(images):
        result["per_tumor_image"] = summarize(tumor_images)
    volumes = [r for r in rows if r["level"] == "volume"]
    if volumes:
        result["per_volume"] = summarize(volumes)
        result["volume_dice_mean"] = result["per_volume"]["dice_mean"]
    result["cases"] = rows
    return result


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table of the summary figures."""
    lines = [
        f"{result['model']} on {result['dataset']} ({result['split']} split): {result['n']} images, {result['groups']} groups"
    ]
    lines.append(f"{'level':<14}{'metric':<13}{'mean':>8}{'std':>8}{'median':>8}{'n':>6}")
    for level in ("per_image", "per_tumor_image", "per_volume"):
        if level not in result:
            continue
        figures = result[level]
        for metric in HEADLINE:
            mean, std, median, n = (figures[f"{metric}_{stat}"] for stat in ("mean", "std", "median", "n"))
            lines.append(f"{level:<14}{metric:<13}{mean:>8.4f}{std:>8.4f}{median:>8.4f}{n:>6d}")
    return "\n".join(lines)


def write_test_metrics(result: dict[str, Any], weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """Record a test-split evaluation in ``weights/<id>/metrics.json`` (per-case rows left out)."""
    figures = {k: v for k, v in result.items() if k not in ("cases", "data_root")}
    return record_metrics(Path(weights_dir) / result["model"], f"{result['split']}:{result['dataset']}", figures)


# Candidates for the validation-time choice of post-processing, simplest first: on a tie the
# earlier (simpler) one wins.
# Low thresholds last: they serve models whose probabilities stay low, such as the naive prior's tumor
# frequencies, and lose ties to the usual ones.
THRESHOLDS = (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.1, 0.05, 0.02)
MORPHOLOGY = (
    {},
    {"fill_holes": True},
    {"largest_component_only": True},
    {"largest_component_only": True, "fill_holes": True},
)


def _validation_probabilities(segmenter: Segmenter, dataset, groups: list[str]) -> list[tuple[np.ndarray, np.ndarray, tuple]]:
    """(probabilities (D, H, W), truth (D, H, W), spacing) per image (2D sets) or per volume."""
    items = []
    for group in groups:
        if dataset.volumetric:
            image, truth, spacing = dataset.load_volume(group)
            spacing = tuple(spacing) if spacing else (1.0, 1.0, 1.0)
            scan = Scan(array=image.astype(np.float32), modalities=tuple(dataset.modalities), spacing=spacing, name=group)
            items.append((segmenter.predict_probabilities(scan), truth, spacing))
        else:
            for sample in dataset.samples(group):
                scan = sample_scan(sample)
                items.append((segmenter.predict_probabilities(scan), sample.mask[None], scan.spacing))
    return items


def mean_dice(items: list[tuple[np.ndarray, np.ndarray, tuple]], postprocessing: PostProcessing, volumetric: bool) -> float:
    """Mean Dice of post-processed probabilities (:func:`_validation_probabilities`' items) against their truths.

    One Dice per volume for volumetric sets, the headline figure there: per-slice Dice would reward
    settings that merely keep the many tumor-free slices empty.
    """
    scores = []
    for probabilities, truth, spacing in items:
        mask = torch.from_numpy(postprocessing(probabilities, spacing=spacing))
        truth_tensor = torch.from_numpy(truth)
        if volumetric:
            mask, truth_tensor = mask[None], truth_tensor[None]
        scores.append(batch_dice(mask, truth_tensor))
    return float(torch.cat(scores).mean())


def validation_dice(segmenter: Segmenter, dataset_name: str, data_root: str | Path) -> float:
    """The validation figure of ``segmenter`` with its own post-processing, scored as ``select`` scores."""
    dataset = open_dataset(dataset_name, data_root)
    items = _validation_probabilities(segmenter, dataset, _groups(dataset, dataset_name, "val"))
    return mean_dice(items, segmenter.postprocessing, dataset.volumetric)


#: Flip TTA doubles the forward pass, so it is on by default only where validation Dice gains this much.
TTA_MIN_GAIN = 0.01


def choose_settings(table: list[dict[str, Any]]) -> dict[str, Any]:
    """The selection table's row to use: the best without flip TTA, unless TTA gains ``TTA_MIN_GAIN``.

    Among equal scores the first (simplest) row wins. Users can still switch TTA on.
    """
    plain = max((row for row in table if not row["flip_tta"]), key=lambda row: row["dice_mean"])
    flipped = [row for row in table if row["flip_tta"]]
    if not flipped:
        return plain
    best_flipped = max(flipped, key=lambda row: row["dice_mean"])
    return best_flipped if best_flipped["dice_mean"] - plain["dice_mean"] >= TTA_MIN_GAIN else plain


def reapply_selection(folder: Path) -> bool:
    """Re-choose the settings of a weights folder from its recorded validation table (no data read).

    For a change of :func:`choose_settings`' rule after selection ran. Returns whether the config
    changed; the test figures must then be measured again (``evaluate --split test``).
    """
    metrics = json.loads((folder / "metrics.json").read_text())
    selection = metrics.get("selection")
    if not selection:
        return False
    best = choose_settings(selection["table"])
    changed = _write_choice(folder, best)
    if changed:
        record_metrics(folder, "selection", {**selection, "chosen": best, "tta_min_gain": TTA_MIN_GAIN})
    return changed


def _write_choice(folder: Path, best: dict[str, Any]) -> bool:
    """Write a selection table row into ``config.json`` (post-processing, threshold, flip TTA); whether it changed."""
    config = json.loads((folder / "config.json").read_text())
    chosen = {k: v for k, v in best.items() if k not in ("flip_tta", "dice_mean")}
    if config.get("flip_tta") == best["flip_tta"] and config.get("postprocessing") == chosen:
        return False
    config.update({"postprocessing": chosen, "threshold": chosen["threshold"], "flip_tta": best["flip_tta"]})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return True


def select_inference_settings(
    model: str, dataset_name: str, data_root: str | Path, split: str = "val", weights_dir: str | Path = WEIGHTS_DIR
) -> dict[str, Any]:
    """Choose threshold, morphology and flip TTA by mean Dice on the validation split (:func:`choose_settings`).

    The mean is over images for 2D data sets and over volumes (patients) for volumetric ones.

    Writes the choice into the weights' ``config.json`` (``postprocessing``, ``threshold``,
    ``flip_tta``) and the whole table into ``metrics.json`` under ``"selection"``. The test split is
    never read, so test figures measured afterwards stay honest.
    """
    if split == "test":
        raise ValueError("inference settings are selected on validation data, never on the test split")
    loaded = load_model(model, weights_dir)
    dataset = open_dataset(dataset_name, data_root)
    groups = _groups(dataset, dataset_name, split)
    table = []
    for flip_tta in (False, True):
        items = _validation_probabilities(Segmenter(loaded, flip_tta=flip_tta), dataset, groups)
        for threshold in THRESHOLDS:
            for morphology in MORPHOLOGY:
                postprocessing = PostProcessing(threshold=threshold, **morphology)
                dice = mean_dice(items, postprocessing, dataset.volumetric)
                table.append({"flip_tta": flip_tta, **postprocessing.to_dict(), "dice_mean": dice})
    best = choose_settings(table)
    folder = loaded.folder
    _write_choice(folder, best)
    baseline = next(
        row
        for row in table
        if not row["flip_tta"] and row["threshold"] == 0.5 and not row["fill_holes"] and not row["largest_component_only"]
    )
    selection = {
        "split": split,
        "dataset": dataset_name,
        "chosen": best,
        "default_dice_mean": baseline["dice_mean"],
        "tta_min_gain": TTA_MIN_GAIN,
        "table": table,
    }
    record_metrics(folder, "selection", selection)
    return selection
