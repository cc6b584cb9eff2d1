"""The leaderboard of the shipped weights: ``python -m seg_core evaluate --all --data-root DIR``.

For every weights folder it evaluates the model on its dataset's committed test split (the same
:func:`seg_core.evaluate.evaluate` a researcher runs by hand), profiles one inference with
:mod:`seg_core.energy` at the model's own input size, records both in the folder's
``metrics.json`` and model card, and writes ``weights/leaderboard.json`` (which the app's Model
zoo page reads) and the table between the ``leaderboard`` markers of ``README.md``.

Every figure is read from ``metrics.json``: nothing here is typed in, except the seed projects'
published figures, which are quoted with their protocol because they are not comparable (see
:data:`PUBLISHED_NOTE`).
"""

from __future__ import annotations

import json
import logging
import statistics
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from seg_core.data import split_sha256
from seg_core.model_card import training_lineage
from seg_core.models import get_spec
from seg_core.weights import WEIGHTS_DIR, list_weights, read_config, record_metrics

# The leaderboard's file lives beside the weights; reading and writing it is seg_core.weights' job.
from seg_core.weights.records import LEADERBOARD_NAME, read_leaderboard, write_leaderboard  # noqa: F401

log = logging.getLogger(__name__)

README_START = "<!-- leaderboard:start -->"
README_END = "<!-- leaderboard:end -->"
IMAGE_METRICS = ("dice", "iou", "hd95", "sensitivity", "precision")

# Figures the seed projects published; quoted, never compared as if measured the same way.
PUBLISHED = (
    {"dataset": "figshare", "model": "U-Net", "architecture": "unet", "dice": 0.779},
    {"dataset": "figshare", "model": "CSA-SNN", "architecture": "csa_snn", "dice": 0.763},
    {"dataset": "figshare", "model": "TCSA-SNN", "architecture": "tcsa_snn", "dice": 0.773},
    {"dataset": "figshare", "model": "AttentionSNN", "architecture": "attention_snn", "dice": 0.503},
    {"dataset": "lgg", "model": "SA-UNet", "architecture": "sa_unet", "dice": 0.905},
    {"dataset": "figshare", "model": "Attention U-Net", "architecture": "attention_unet", "dice": 0.685},
)
PUBLISHED_NOTE = (
    "The seeds' figures are not comparable with ours: they split slices at random (slices of one patient "
    "in both training and test), averaged Dice per batch rather than per image, and selected models on "
    "validation or test data; ours split by patient, average per image, select on "
    "validation only and report the held-out test split once."
)


def inference_cost(model_id: str, weights_dir: str | Path = WEIGHTS_DIR, repeats: int = 5) -> dict[str, Any]:
    """Parameters, MACs, SOPs, estimated energy and median CPU latency of one inference of ``model_id``.

    Profiled with its trained weights on the energy module's head phantom at the model's input size
    (batch 1), so spiking rates are those of a brain-like image.
    """
    import torch

    from seg_core.energy import profile

    config = read_config(Path(weights_dir) / model_id)
    height, width = config["input_size"]
    report = profile(model_id, (height, width), repeats=repeats, weights_dir=weights_dir)
    backend_name, backend_runs = _default_backend_latency(model_id, weights_dir, repeats)
    return {
        "input": f"{height}x{width}",
        "params": report.params,
        "macs": report.macs,
        "dense_macs": report.dense_macs,
        "sops": report.sops,
        "energy_mj": report.energy_uj / 1000,
        "ann_energy_mj": report.ann_energy_uj / 1000,
        "e_mac_pj": report.e_mac_pj,
        "e_ac_pj": report.e_ac_pj,
        # What users wait for: one slice through the default backend. The torch eager figure stays
        # beside it, the reference of every backend.
        "latency_ms": statistics.median(backend_runs) if backend_runs else report.latency_ms,
        "latency_runs_ms": backend_runs or report.latency_runs_ms,
        "backend": backend_name,
        "torch_latency_ms": report.latency_ms,
        "hardware": f"CPU, {report.threads} threads (torch {torch.__version__})",
    }


def _default_backend_latency(model_id: str, weights_dir: str | Path, repeats: int) -> tuple[str, list[float]]:
    """The default backend's name and its wall times (ms) for one phantom slice at the model's input size."""
    import torch

    from seg_core.backends import create_backend
    from seg_core.energy import measure_latency
    from seg_core.energy.phantom import phantom_sample
    from seg_core.weights import load_model

    loaded = load_model(model_id, weights_dir)
    config = loaded.config
    backend, _ = create_backend(loaded.model, config, torch.device("cpu"))
    shape = (1, len(config["modalities"]), *config["input_size"])
    sample = phantom_sample(shape, config["modalities"], config.get("normalization")).numpy()
    return backend.name, measure_latency(backend, sample, repeats=repeats)


def _read_metrics(folder: Path) -> dict[str, Any]:
    path = folder / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _training_cost(training: dict[str, Any], elapsed_s: float | None) -> dict[str, float | None]:
    """Minutes and kWh of the whole lineage: a fine-tune's own run plus the runs it started from."""
    seconds, kwh = 0.0, 0.0
    for record in training_lineage(training):
        seconds += record.get("wall_time_s") or 0.0
        spent = (record.get("energy") or {}).get("energy_kwh")
        kwh = None if kwh is None or spent is None else kwh + spent
    seconds = seconds or elapsed_s or 0.0  # runs from before the totals were recorded
    # An empty record never entered the loop: nothing was metered, so the energy is unknown, not zero.
    return {"train_minutes": seconds / 60 or None, "train_energy_kwh": kwh if training else None}


def leaderboard_row(model_id: str, weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    """One leaderboard row from a weights folder's config and metrics (``None`` where not measured)."""
    folder = Path(weights_dir) / model_id
    config = read_config(folder)
    metrics = _read_metrics(folder)
    dataset = config.get("dataset", "")
    test = metrics.get(f"test:{dataset}", {})
    cost = metrics.get("inference_cost", {})
    training = metrics.get("training", {})
    per_volume = test.get("per_volume", {})
    per_tumor_image = test.get("per_tumor_image", {})
    row = {
        "id": model_id,
        "architecture": config["architecture"],
        "dataset": dataset,
        # False for weights trained before Zoo v2 on a split that has since been replaced: their figures
        # come from other test patients (and may include patients the current split tests on).
        "current_split": config.get("split_sha256") == split_sha256(dataset),
        "spiking": bool(config.get("spiking", False)),
        "input_size": config.get("input_size"),
        "test_images": test.get("n"),
        "test_groups": test.get("groups"),
        "val_dice": training.get("val_dice_per_image"),
        "selected_val_dice": metrics.get("selection", {}).get("chosen", {}).get("dice_mean"),
        "volume_dice_mean": per_volume.get("dice_mean"),
        "volume_dice_std": per_volume.get("dice_std"),
        "tumor_slice_dice_mean": per_tumor_image.get("dice_mean"),
        "tumor_slice_dice_std": per_tumor_image.get("dice_std"),
        "params": cost.get("params"),
        "macs": cost.get("macs"),
        "sops": cost.get("sops"),
        "energy_mj": cost.get("energy_mj"),
        "latency_ms": cost.get("latency_ms"),
        "backend": cost.get("backend", "torch"),
    }
    row.update(_training_cost(training, config.get("training", {}).get("elapsed_s")))
    recipe = config.get("training", {})
    row["budget_cpu_minutes"] = recipe.get("budget_cpu_minutes") or None
    row["train_cpu_minutes"] = training.get("cpu_minutes")
    row["stopped"] = training.get("stopped")
    row["hd95_convention"] = test.get("hd95_convention")
    # A model_config without time_steps runs with its architecture's default (tcsa_snn: 4), as the model is built.
    default_steps = get_spec(config["architecture"]).time_steps if row["spiking"] else None
    row["time_steps"] = (config.get("model_config") or {}).get("time_steps", default_steps) if row["spiking"] else None
    for metric in IMAGE_METRICS:
        row[f"{metric}_mean"] = test.get(f"{metric}_mean")
        row[f"{metric}_std"] = test.get(f"{metric}_std")
    row["dice_median"] = test.get("per_image", {}).get("dice_median")
    primary = PRIMARY[_volumetric(dataset)]
    row["primary_metric"] = primary
    row["primary_mean"] = row[f"{primary}_mean"]
    row["primary_std"] = row[f"{primary}_std"]
    row["primary_n"] = test.get("groups") if primary == "volume_dice" else test.get("n")
    return row


# The figure a dataset's models are ranked by: per patient for volumes (per-image Dice counts every
# tumor-free slice predicted empty as a perfect 1), per image for 2D slices.
PRIMARY = {True: "volume_dice", False: "dice"}
PRIMARY_LABELS = {"volume_dice": "Dice per patient (volume)", "dice": "Dice per image"}


def _volumetric(dataset: str) -> bool:
    from seg_core.data import DATASETS

    adapter = DATASETS.get(dataset)
    return bool(adapter is not None and adapter.volumetric)


def _ranking_figure(row: dict[str, Any]) -> float:
    """The row's primary figure (see :data:`PRIMARY`); -1 when not measured, so it ranks last."""
    return row["primary_mean"] if row.get("primary_mean") is not None else -1.0


def rank_rows(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """``{dataset: rows}``, each dataset's rows best primary figure first (ties by id)."""
    ranked: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda row: (row["dataset"], -_ranking_figure(row), row["id"])):
        ranked.setdefault(row["dataset"], []).append(row)
    return ranked


def build_leaderboard(weights_dir: str | Path = WEIGHTS_DIR) -> dict[str, Any]:
    """All shipped weights' rows, ranked within each dataset by its primary figure, and the published figures.

    ``datasets`` holds, per dataset, the primary metric and the ranking (ids, best first): the one
    order the README, the app's Model zoo page and the API's ``/models`` show.
    """
    rows = [leaderboard_row(model_id, weights_dir) for model_id in list_weights(weights_dir)]
    ranked = rank_rows(rows)
    return {
        "generated_by": "python -m seg_core evaluate --all --data-root ../shared/data",
        "split": "test",
        "datasets": {
            dataset: {
                "primary_metric": PRIMARY[_volumetric(dataset)],
                "primary_label": PRIMARY_LABELS[PRIMARY[_volumetric(dataset)]],
                "ranking": [row["id"] for row in members],
            }
            for dataset, members in ranked.items()
        },
        "rows": [row for members in ranked.values() for row in members],
        "published": list(PUBLISHED),
        "published_note": PUBLISHED_NOTE,
    }


def _figure(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _mean_std(mean: float | None, std: float | None, digits: int = 3) -> str:
    return "n/a" if mean is None else f"{mean:.{digits}f} ± {_figure(std, digits)}"


def render_markdown(board: dict[str, Any]) -> str:
    """The leaderboard as Markdown tables (one per dataset, in its ranking), then the published figures."""
    lines = []
    by_id = {row["id"]: row for row in board["rows"]}
    for dataset, entry in board.get("datasets", {}).items():
        rows = [by_id[model_id] for model_id in entry["ranking"]]
        volumetric = entry["primary_metric"] == "volume_dice"
        unit = "patients" if volumetric else "images"
        lines += [
            f"**{dataset}**: ranked by {entry['primary_label']} on the test split (mean ± std over n {unit})"
            + (
                "; per-slice figures count every slice, and a slice without tumor predicted empty scores a perfect 1, "
                "so Dice over the slices with tumor is shown too"
                if volumetric
                else ""
            )
            + ". HD95 in mm (px without spacing); a missed or spurious tumor counts as the image diagonal (BraTS convention).",
            "",
            f"| model | spiking | {entry['primary_label']} | n |"
            + (" Dice (tumor slices) |" if volumetric else "")
            + " IoU | HD95 | sensitivity | precision | params | energy / image | CPU latency | training |",
            "|---|---|---|---|" + ("---|" if volumetric else "") + "---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            cells = [
                f"`{row['id']}`" + ("" if row["current_split"] else " †"),
                "yes" + (f" (T={row['time_steps']})" if row.get("time_steps") else "") if row["spiking"] else "no",
                _mean_std(row["primary_mean"], row["primary_std"]),
                "n/a" if row["primary_n"] is None else str(row["primary_n"]),
            ]
            if volumetric:
                cells.append(_mean_std(row["tumor_slice_dice_mean"], row["tumor_slice_dice_std"]))
            cells += [
                *(_metric_cell(row, m) for m in IMAGE_METRICS if m != "dice"),
                "n/a" if row["params"] is None else f"{row['params'] / 1e6:.2f} M",
                "n/a" if row["energy_mj"] is None else f"{row['energy_mj']:.3f} mJ",
                "n/a" if row["latency_ms"] is None else f"{row['latency_ms']:.0f} ms ({row.get('backend', 'torch')})",
                training_summary(row),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if any(row["hd95_mean"] is not None and not row.get("hd95_convention") for row in board["rows"]):
        lines += ["\\* HD95 measured before the BraTS convention: images with a missed tumor were left out of its mean.", ""]
    if any(not row["current_split"] for row in board["rows"]):
        lines += [
            "† Trained and tested on a split that has since been replaced (before Zoo v2: figshare by blocks of ids, "
            "which let a patient's other planes sit in training). Its figures are not comparable with the others; "
            "the training queue replaces it.",
            "",
        ]
    lines += ["Published figures of the seed projects:", "", "| dataset | model | Dice (as published) |", "|---|---|---|"]
    lines += [f"| {item['dataset']} | {item['model']} | {item['dice']:.3f} |" for item in board["published"]]
    lines += ["", board["published_note"]]
    return "\n".join(lines)


def _metric_cell(row: dict[str, Any], metric: str) -> str:
    cell = _mean_std(row[f"{metric}_mean"], row[f"{metric}_std"], 1 if metric == "hd95" else 3)
    # Figures measured before the BraTS convention left missed tumors out of the HD95 mean.
    return cell + " *" if metric == "hd95" and row["hd95_mean"] is not None and not row.get("hd95_convention") else cell


def training_summary(row: dict[str, Any]) -> str:
    """What a leaderboard row's training spent, in words: "60 of 60 CPU-min", "closed-form fit", ..."""
    from seg_core.models import get_spec

    if row.get("stopped") == "closed_form" or not get_spec(row["architecture"]).trainable:
        spent = row.get("train_cpu_minutes")
        return "closed-form fit" + (f", {spent:.1f} CPU-min" if spent else "")
    if row.get("budget_cpu_minutes"):
        return f"{row.get('train_cpu_minutes') or 0:.0f} of {row['budget_cpu_minutes']:.0f} CPU-min"
    return "n/a" if row.get("train_minutes") is None else f"{row['train_minutes']:.0f} min wall"


def update_readme(board: dict[str, Any], readme: str | Path) -> bool:
    """Replace the text between the leaderboard markers of ``readme``; False when it has no markers."""
    path = Path(readme)
    text = path.read_text()
    if README_START not in text or README_END not in text:
        return False
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_START}\n{render_markdown(board)}\n{README_END}{tail}")
    return True


def evaluate_all(
    data_root: str | Path,
    weights_dir: str | Path = WEIGHTS_DIR,
    models: Iterable[str] | None = None,
    evaluate_test: bool = True,
    measure_cost: bool = True,
    readme: str | Path | None = None,
    report: Callable[[str], None] = log.info,
) -> dict[str, Any]:
    """Evaluate every (or the given) shipped weights on its test split, profile it, write the leaderboard.

    Args:
        data_root: folder holding the dataset folders (``figshare/``, ``lgg/`` ...).
        models: weights ids to (re)measure; the leaderboard always lists every shipped folder.
        evaluate_test: run the test-split evaluation (False: keep the recorded figures).
        measure_cost: profile MACs/SOPs/energy/latency (False: keep the recorded figures).
        readme: README to update between the leaderboard markers (``None``: leave it).
    """
    from seg_core.evaluate import evaluate, write_test_metrics

    weights_dir = Path(weights_dir)
    for model_id in models if models is not None else list_weights(weights_dir):
        folder = weights_dir / model_id
        dataset = read_config(folder)["dataset"]
        if evaluate_test:
            result = evaluate(model_id, dataset, data_root, split="test", weights_dir=weights_dir)
            write_test_metrics(result, weights_dir)
            report(f"{model_id}: test Dice {result['dice_mean']:.4f} ± {result['dice_std']:.4f} on {result['n']} images")
        if measure_cost:
            cost = inference_cost(model_id, weights_dir)
            record_metrics(folder, "inference_cost", cost)
            report(f"{model_id}: {cost['energy_mj']:.3f} mJ per image, {cost['latency_ms']:.1f} ms median CPU latency")
    board = build_leaderboard(weights_dir)
    write_leaderboard(board, weights_dir)
    if readme is not None and not update_readme(board, readme):
        report(f"{readme} has no leaderboard markers; left unchanged")
    return board
