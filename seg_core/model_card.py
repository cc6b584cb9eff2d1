"""Hugging Face model cards (``weights/<id>/README.md``) written from a model's config and metrics.

Every figure in a card is read from ``metrics.json``, which training and evaluation write; nothing
is typed in by hand.
"""

from __future__ import annotations

import json
from itertools import takewhile
from pathlib import Path
from typing import Any

from seg_core.data import DATASETS
from seg_core.models import get_spec
from seg_core.train.config import command_line
from seg_core.weights import files_section

__all__ = ["DATASET_INFO", "render_model_card", "training_lineage", "write_model_card"]

DATASET_INFO = {
    "figshare": {
        "title": "Figshare brain tumor dataset (Cheng et al. 2015), T1 contrast-enhanced slices",
        "license": "cc-by-4.0",
        "hub": "figshare-brain-tumor",
    },
    "lgg": {
        "title": "TCGA-LGG FLAIR abnormality segmentation (Buda et al. 2019)",
        "license": "other",
        "hub": "lgg-mri-segmentation",
    },
    "brats2015": {"title": "BraTS 2015 training cases (Menze et al. 2015)", "license": "cc-by-nc-sa-3.0", "hub": "brats2015"},
    "brats": {
        "title": "BraTS 2015 and 2018 training cases (Menze et al. 2015; Bakas et al. 2017, 2018), whole tumor",
        "license": "other",
        "hub": "brats",
    },
}


def training_lineage(training: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's training record from ``metrics.json`` and those of the runs it started from, latest first.

    A fine-tune (``--init-from``) keeps its starting run's record under ``initial``, and a fine-tune
    of a fine-tune nests them, so the chain is as deep as the lineage.
    """
    chain, record = [], training
    while record:
        chain.append(record)
        record = record.get("initial") or {}
    return chain


def _training_command(training: dict[str, Any]) -> str:
    # The data root is where the public data sets live for the reader, not where they lay for the run.
    return command_line(training, data_root="../shared/data")


def _split_line(config: dict[str, Any], dataset: str) -> str:
    """What the card can say of the split the weights were trained on: only what the record shows."""
    from seg_core.data import split_sha256

    recorded = config.get("split_sha256")
    if "split_sha256" in config and recorded is None:
        return f"- Trained without a committed split file for `{dataset}`."
    if recorded is None:
        return (
            f"- The split file this run used was not recorded (trained before splits were hashed); `splits/{dataset}.json` "
            "may have changed since, so the test figures below need not come from patients the training never saw."
        )
    if recorded != split_sha256(dataset):
        return (
            f"- Trained on an earlier version of `splits/{dataset}.json` (sha256 {recorded[:12]}), since replaced: the test "
            "figures below are not comparable with models of the current split."
        )
    return (
        f"- Patient-level split committed in `splits/{dataset}.json` (sha256 {recorded[:12]}); selection on the validation "
        "split only; test figures below come from the test split, which training and selection never saw."
    )


def _stop_line(training: dict[str, Any], history: dict[str, Any]) -> str:
    reasons = {
        "budget": f"the budget of {training.get('budget_cpu_minutes')} CPU-minutes was spent",
        "early_stop": f"it stopped early: validation had not improved for {training.get('patience')} epochs",
        "max_minutes": f"it stopped early: the wall-clock limit of {training.get('max_minutes')} min was reached (resumable)",
        "epochs": f"all {training.get('epochs')} epochs ran",
        "closed_form": "fitted once in closed form (no gradient training; the budget does not apply)",
    }
    if history["stopped"] == "closed_form":
        return f"{reasons['closed_form'].capitalize()}, in {history.get('cpu_minutes', 0):.1f} CPU-minutes."
    return f"Ran {history.get('epochs_run', '?')} epochs; {reasons.get(history['stopped'], history['stopped'])}."


def _volumetric(dataset: str | None) -> bool:
    """Whether ``dataset`` is evaluated per patient volume (the adapter says so), as ``select`` does."""
    adapter = DATASETS.get(dataset or "")
    return bool(adapter is not None and adapter.volumetric)


def _row(label: str, summary: dict[str, Any], metric: str) -> str:
    cells = [summary.get(f"{metric}_{stat}") for stat in ("mean", "std", "median")]
    return f"| {label} | " + " | ".join("n/a" if v is None else f"{v:.4f}" for v in cells) + " |"


def render_model_card(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The model card text for weights with ``config`` and ``metrics``."""
    dataset = config.get("dataset", "")
    info = DATASET_INFO.get(dataset, {"title": dataset, "license": "other", "hub": dataset})
    test = metrics.get(f"test:{dataset}")
    lines = [
        *_front_matter(config, info, test),
        "",
        *_model_section(config, dataset),
        "",
        "## Data and split",
        f"- {info['title']}; license {info['license']}.",
        _split_line(config, dataset),
        "",
        *_training_section(config, metrics),
        "",
        *_test_section(config, dataset, test),
        *_cost_section(metrics.get("inference_cost")),
        *_int8_section(config.get("int8")),
    ]
    record = config.get("sha256")
    if record:  # written by save_pretrained; load_model checks the files against it
        lines += ["", *files_section(record)]
    lines += [
        "",
        "## Limits",
        "- Trained on 2D slices of one public data set; other scanners, sequences and resolutions may fail silently.",
        "- Sizes of the lite configuration and the training resolution were chosen for CPU training; see the configuration above.",
        "- Test figures are on a small held-out set of patients; their spread (std) matters as much as the mean.",
        "",
    ]
    return "\n".join(lines)


def _front_matter(config: dict[str, Any], info: dict[str, str], test: dict[str, Any] | None) -> list[str]:
    """The card's YAML header: license, tags and, once tested, the Hub's model-index of test figures."""
    index = []
    for metric in ("dice", "iou", "hd95") if test else ():
        if test.get(f"{metric}_mean") is None:  # e.g. HD95 of a model that never predicts tumor
            continue
        index.append(
            f"      - type: {metric}\n        name: test {metric} (per image, mean)\n        value: {test[f'{metric}_mean']:.4f}"
        )
    header = [
        "---",
        f"license: {info['license']}",
        "library_name: pytorch",
        "pipeline_tag: image-segmentation",
        "tags: [medical-imaging, brain-tumor, mri, segmentation, brainseg-studio]",
        f"datasets: [{info['hub']}]",
        "metrics: [dice, iou, hd95]",
    ]
    if index:
        header += [
            "model-index:",
            f"- name: {config['id']}",
            "  results:",
            "  - task: {type: image-segmentation}",
            f"    dataset: {{name: {info['title']}, type: {info['hub']}, split: test}}",
            "    metrics:",
            *index,
        ]
    return [*header, "---"]


def _model_section(config: dict[str, Any], dataset: str) -> list[str]:
    """Title, disclaimer and the architecture with its settings, inputs and storage."""
    spec = get_spec(config["architecture"])
    return [
        f"# {config['id']}: {spec.title} trained on {dataset}",
        "",
        "> Research and teaching only: not a medical device, not for diagnosis.",
        "",
        "## Model",
        f"- Architecture: `{spec.name}` ({spec.title}). {spec.description}",
        f"- Reference: {spec.reference}",
        f"- Configuration: `{json.dumps(config.get('model_config', {}))}`; input {config['input_size'][0]}x{config['input_size'][1]} px, "
        f"modalities {', '.join(config['modalities'])}; intensity normalisation `{json.dumps(config.get('normalization'))}`; "
        f"threshold {config.get('threshold', 0.5)}.",
        f"- Weights stored as {config.get('stored_dtype', 'float32')} safetensors, loaded as float32.",
        *_storage_lines(config.get("storage")),
    ]


def _storage_lines(storage: dict[str, Any] | None) -> list[str]:
    """How the int8 storage of the kernels was checked, when the weights were converted to it."""
    if not storage or not storage.get("accepted"):
        return []
    return [
        f"- The trained float16 kernels were stored as per-channel int8 afterwards (`{storage['command']}`): "
        f"validation Dice {storage['val_dice_int8_storage']:.4f} against {storage['val_dice_before']:.4f} before "
        f"(drop {storage['drop']:+.4f}, allowed {storage['max_drop']}; {storage['backend']}), "
        f"{storage['bytes_before'] / 1e6:.2f} MB -> {storage['bytes_after'] / 1e6:.2f} MB. The test figures below are of these weights.",
    ]


def _training_section(config: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """The command that reproduces the run, what it reached and cost, its lineage and the chosen inference settings."""
    training = config.get("training", {})
    history = metrics.get("training", {})
    lines = ["## Training", "```bash", _training_command(training) if training else "(no training record)", "```"]
    if training:
        level = (history.get("history") or [{}])[-1].get("val_level", "image")
        lines.append(
            f"- Best validation per-{level} Dice {history.get('val_dice_per_image', float('nan')):.4f} at epoch {training.get('best_epoch')} "
            f"(threshold 0.5, at the {training['size']} px training size); training wall time to that epoch "
            f"{training.get('elapsed_s', 0) / 60:.1f} min on {training.get('hardware', 'CPU')}."
        )
    if history.get("stopped"):
        lines.append(f"- {_stop_line(training, history)}")
    if training.get("teacher"):
        lines.append(
            f"- Distilled from the teacher `{training['teacher']}` (soft targets at temperature {training['distill_temperature']}, "
            f"weight {training['distill_weight']}, beside the Dice + cross-entropy loss on the expert masks)."
        )
    spent = history.get("energy")
    if spent:
        lines.append(
            f"- Whole run: {history.get('epochs_run', '?')} epochs, {history.get('wall_time_s', 0) / 60:.1f} min wall, "
            f"{history.get('cpu_minutes', 0):.1f} CPU-minutes; training energy "
            f"{spent['energy_kwh']:.4f} kWh ({spent['emissions_kg'] * 1000:.1f} g CO2eq at the {spent['carbon_country']} grid "
            f"intensity), measured with {spent['energy_method']}."
        )
    elif training:
        lines.append("- Training energy: not recorded for this run (its metrics hold no energy measurement).")
    if training.get("init_from"):
        lines += _lineage_lines(training, history)
    lines += _selection_lines(config, metrics.get("selection"))
    if config.get("inference_dtype") == "bfloat16":
        lines.append(
            "- Inference runs under bfloat16 autocast, as in training, on CPUs with AVX-512 BF16 or AMX and on "
            "bfloat16 GPUs (2-3x faster); other devices run float32, whose masks can differ in a few boundary pixels."
        )
    return lines


def _lineage_lines(training: dict[str, Any], history: dict[str, Any]) -> list[str]:
    """A fine-tune's starting point, and the command and cost of every run it builds on, earliest first."""
    lines = [
        f"- Fine-tuned from `{training['init_from']}` (its own training record is in `metrics.json` under "
        "`training.initial`); the energy above covers the fine-tuning only."
    ]
    # The runs this one started from, earliest first: reproducing it means running them all.
    lineage = list(takewhile(lambda record: record.get("command"), training_lineage(history)[1:]))[::-1]
    for step, initial in enumerate(lineage, start=1):
        spent = initial.get("energy") or {}
        cost = f", {spent['energy_kwh']:.4f} kWh" if spent.get("energy_kwh") is not None else ""
        lines += [
            f"- Step {step} of {len(lineage) + 1}, the `{initial['id']}` run it builds on: {initial.get('epochs_run', '?')} "
            f"epochs, {initial.get('wall_time_s', 0) / 60:.1f} min{cost}, trained with:",
            "",
            "```bash",
            _training_command(initial["command"]),
            "```",
            "",
        ]
    return lines


def _selection_lines(config: dict[str, Any], selection: dict[str, Any] | None) -> list[str]:
    """The inference settings ``select`` chose on validation, with the Dice they gain over the defaults."""
    if not selection:
        return []
    best = selection["chosen"]
    level = "per-volume" if _volumetric(config.get("dataset")) else "per-image"
    return [
        f"- Inference settings chosen on the {selection['split']} split (`python -m seg_core select`): threshold {best['threshold']}, "
        f"fill holes {best['fill_holes']}, largest component only {best['largest_component_only']}, left-right flip TTA "
        f"{best['flip_tta']}; {selection['split']} {level} Dice {selection['default_dice_mean']:.4f} with the defaults, "
        f"{best['dice_mean']:.4f} with these."
    ]


def _test_section(config: dict[str, Any], dataset: str, test: dict[str, Any] | None) -> list[str]:
    """The test split's figures per image (and per volume), or that there are none yet."""
    if not test:
        return ["## Test figures", "Not evaluated on the test split yet."]
    lines = [
        "## Test figures",
        f"Measured with `python -m seg_core evaluate --model {config['id']} --dataset {dataset} --split test` on {test['n']} images "
        f"({test['groups']} patient groups), at each image's native resolution.",
        "",
        "| metric | mean | std | median |",
        "|---|---|---|---|",
    ]
    for metric in ("dice", "iou", "hd95", "sensitivity", "precision", "specificity"):
        lines.append(_row(f"{metric} (per image)", test["per_image"], metric))
    if "per_volume" in test:
        lines.append(_row("dice (per volume)", test["per_volume"], "dice"))
    return [*lines, "", "HD95 is in millimetres where the images record pixel spacing, in pixels otherwise."]


def _cost_section(cost: dict[str, Any] | None) -> list[str]:
    """The profiled cost of one inference (parameters, operations, energy, latency), when measured."""
    if not cost:
        return []
    return [
        "",
        "## Inference cost",
        f"Estimated with `seg_core.energy` for one {cost['input']} input: {cost['params'] / 1e6:.2f} M parameters, "
        f"{cost['macs'] / 1e9:.3f} G multiply-accumulates, {cost['sops'] / 1e9:.3f} G synaptic operations, "
        f"about {cost['energy_mj']:.3f} mJ (45 nm figures: {cost['e_mac_pj']} pJ per MAC, {cost['e_ac_pj']} pJ per "
        f"accumulate); median CPU latency {cost['latency_ms']:.1f} ms on {cost['hardware']}.",
    ]


def _int8_section(int8: dict[str, Any] | None) -> list[str]:
    """How the int8 graph is made and was validated, when the weights have one."""
    if not int8:
        return []
    if "graph_digest" not in int8:  # the old layout shipped the graph itself; it is no longer read
        return [
            "",
            "## int8 graph",
            f"`{int8['file']}` is no longer run; `{int8['command']}` replaces it with calibration ranges.",
        ]
    built = int8.get("versions") or {}
    return [
        "",
        "## int8 graph",
        f"`{int8['file']}` (sha256 `{int8['sha256']}`) holds the activation ranges of ONNX Runtime static quantisation "
        f"(QDQ, per-channel int8 weights, uint8 activations), calibrated on {int8['calibration_slices']} training slices: "
        f"`{int8['command']}`. The int8 graph itself is not shipped: it is built from these ranges at first use into the "
        "ONNX cache outside git, and runs only when its content digest is the validated one "
        f"(`{int8['graph_digest']}`, built with torch {built.get('torch', '?')} and ONNX Runtime {built.get('onnxruntime', '?')}); "
        f"otherwise the float32 graph runs. Validation Dice {int8['val_dice_int8']:.4f} against {int8['val_dice_fp32']:.4f} "
        f"in float32 (drop {int8['drop']:+.4f}, allowed {int8['max_drop']}); the app runs it by default, "
        "`--backend onnxruntime` runs float32.",
    ]


def write_model_card(folder: str | Path) -> Path:
    """(Re)write ``folder/README.md`` from its ``config.json`` and ``metrics.json``."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text())
    metrics_path = folder / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    path = folder / "README.md"
    path.write_text(render_model_card(config, metrics))
    return path
