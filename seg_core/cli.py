"""The ``python -m seg_core`` command line. Each subcommand is a thin wrapper over the library."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

# seg_core.backends.BACKENDS, spelt out so that --help need not import torch (a test checks they agree).
BACKEND_CHOICES = ("auto", "torch", "onnxruntime", "onnxruntime-int8")

if TYPE_CHECKING:
    # argparse names no public type for what add_subparsers returns.
    _Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def _train(args: argparse.Namespace) -> int:
    from seg_core.train import train
    from seg_core.train.config import config_from_args

    summary = train(config_from_args(args), resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summary, indent=2))
    return 0


def _train_zoo(args: argparse.Namespace) -> int:
    from seg_core.train.zoo import ZooQueue, parse_stop_by, protocol_for, run_queue, status_lines

    architectures = tuple(name for name in args.architectures.split(",") if name)
    queue = ZooQueue(
        protocol_for(args.dataset, args.budget_minutes, architectures),
        args.data_root,
        **({"folder": Path(args.zoo_dir)} if args.zoo_dir else {}),
        **({"weights_dir": Path(args.weights_dir)} if args.weights_dir else {}),
    )
    if args.finalize:  # one job's shipping, run by the queue in a process of its own
        import torch

        torch.set_num_threads(1)
        result = queue.finalize(args.finalize)
        queue.result_path(args.finalize).write_text(json.dumps(result, indent=1) + "\n")
        return 0
    if not args.status:
        run_queue(queue, workers=args.workers, stop_by=parse_stop_by(args.stop_by) if args.stop_by else None)
    print("\n".join(status_lines(queue)))
    return 0


def _models(args: argparse.Namespace) -> int:
    from seg_core.models import get_spec, list_models
    from seg_core.weights import list_weights, read_config, resolve_weights

    if args.json:
        architectures = [get_spec(name).to_dict() for name in list_models()]
        weights = [{"id": w, **read_config(resolve_weights(w))} for w in list_weights()]
        print(json.dumps({"architectures": architectures, "weights": weights}, indent=2))
        return 0
    print("Architectures (python -m seg_core train --arch NAME):")
    for name in list_models():
        spec = get_spec(name)
        print(f"  {name:<18} {spec.title}{'  [spiking, T=' + str(spec.time_steps) + ']' if spec.spiking else ''}")
    print("Trained weights (--model ID):")
    for weights_id in list_weights() or ["(none yet)"]:
        print(f"  {weights_id}")
    return 0


def _mask_path_problem(out: Path) -> str | None:
    """Why the mask cannot be written to ``out`` (suffix, folder, permissions), or None."""
    import os

    if not out.name.lower().endswith((".png", ".nii", ".nii.gz")):
        return f"--out {out}: the mask file must end in .nii.gz or .nii (volumes and images) or .png (2D images)"
    folder = out.parent
    if not folder.is_dir():
        return f"--out {out}: the folder {folder} does not exist; create it first"
    if out.is_dir():
        return f"--out {out}: is a folder; give a file name"
    if not os.access(folder, os.W_OK | os.X_OK) or (out.exists() and not os.access(out, os.W_OK)):
        return f"--out {out}: not writable by this user"
    return None


def _segment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seg_core.evaluate import json_safe
    from seg_core.inference import Segmenter
    from seg_core.postprocess import PostProcessing
    from seg_core.scans import describe, load_scan, save_mask
    from seg_core.weights import load_model

    out = Path(args.out)
    problem = _mask_path_problem(out)  # before the scan and the model: a typo costs nothing
    if problem is None:
        inputs = [Path(p) for p in args.inputs]
        scan = load_scan(
            inputs[0] if len(inputs) == 1 else inputs, modalities=tuple(args.modalities.split(",")) if args.modalities else None
        )
        if not scan.is_2d and out.suffix.lower() == ".png":
            problem = f"--out {out}: a volume of {scan.num_slices} slices needs a NIfTI mask (.nii.gz or .nii), not .png"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    flip = {"auto": None, "on": True, "off": False}[args.flip_tta]
    chosen = None
    if args.model == "auto":
        from seg_core.matching import choose_model, fit_summary

        # The best fit for this scan, as the app preselects it; the report says which and why.
        chosen = choose_model(scan)
        args.model = chosen.model_id
    segmenter = Segmenter(load_model(args.model), backend=args.backend, flip_tta=flip)
    postprocessing = PostProcessing(
        threshold=args.threshold if args.threshold is not None else segmenter.threshold,
        opening_radius=args.opening,
        closing_radius=args.closing,
        fill_holes=args.fill_holes,
        largest_component_only=args.largest_component,
        min_size_mm2=args.min_size,
    )
    prediction = segmenter(scan, postprocessing)
    save_mask(scan, prediction.mask, out, fmt="png" if out.suffix.lower() == ".png" else "nifti")
    report = {
        "input": describe(scan),
        "model": prediction.model_id,
        **({"model_choice": fit_summary(chosen)} if chosen is not None else {}),
        "out": str(out),
        "seconds": round(prediction.seconds, 3),
        "backend": prediction.backend,
        **{k: v for k, v in prediction.sizes.items() if not isinstance(v, list | tuple)},
        "tumor_pixels": int(prediction.mask.sum()),
        "spacing_known": scan.spacing_known,
        "slices_with_tumor": [i for i, present in enumerate(prediction.slice_presence) if present],
    }
    if args.json:
        print(json.dumps(json_safe(report), indent=2, allow_nan=False))
    else:
        print(
            f"{scan.name or inputs[0].name}: {prediction.model_id} in {prediction.seconds:.2f} s ({prediction.backend}) -> {out}"
        )
        if chosen is not None:
            print(f"  model chosen for this scan (--model auto): {chosen.title}. {chosen.reason}")
        for key, value in report.items():
            if key not in ("input", "model", "model_choice", "out", "seconds", "backend"):
                print(f"  {key}: {value}")
    return 0


def _batch(args: argparse.Namespace) -> int:
    from seg_core.batch import CohortError, run_cohort

    try:
        run = run_cohort(
            args.inputs,
            args.model,
            args.out,
            workers=args.workers,
            ray=args.ray,
            backend=args.backend,
            parquet=args.parquet,
            progress=not args.no_progress,
        )
    except (CohortError, ImportError, ConnectionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{run.ran} (case, model) pairs run, {run.skipped} done before, {len(run.errors)} errors -> {run.out_dir}")
    for path in run.files:
        print(f"  {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from seg_core.backends import export_cache_dir, export_onnx, int8_graph, onnx_unsupported_reason
    from seg_core.weights import list_weights, load_model

    model_ids = list_weights() if args.model == "all" else args.model.split(",")
    for model_id in model_ids:
        loaded = load_model(model_id)
        reason = onnx_unsupported_reason(loaded.config)
        if reason:
            print(f"{model_id}: stays on torch ({reason})")
            continue
        print(f"{model_id}: {export_onnx(loaded.model, loaded.config)}")
        if (loaded.config.get("int8") or {}).get("accepted"):
            graph = int8_graph(loaded.model, loaded.config, loaded.folder)
            print(f"{model_id} int8: {graph or 'not built (see the warning above); the fp32 graph runs'}")
    print(f"cache: {export_cache_dir()} (outside git; delete it at will, graphs are made again at first use)")
    return 0


def _quantize(args: argparse.Namespace) -> int:
    from seg_core.quantize import quantize_int8

    for model_id in args.model.split(","):
        record = quantize_int8(model_id, args.data_root, calibration=args.calibration)
        verdict = "kept" if record["accepted"] else f"refused (more than {record['max_drop']})"
        print(
            f"{model_id}: validation Dice fp32 {record['val_dice_fp32']:.4f}, int8 {record['val_dice_int8']:.4f}, "
            f"drop {record['drop']:+.4f}: {verdict}"
        )
    return 0


def _store_int8(args: argparse.Namespace) -> int:
    from seg_core.store_int8 import store_int8

    for model_id in args.model.split(","):
        record = store_int8(model_id, args.data_root)
        verdict = "stored as int8" if record["accepted"] else f"kept as it was (drop over {record['max_drop']})"
        print(
            f"{model_id}: validation Dice {record['val_dice_before']:.4f}, with int8 storage {record['val_dice_int8_storage']:.4f}, "
            f"{record['bytes_before']} -> {record['bytes_after']} bytes: {verdict}"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from seg_core.evaluate import evaluate, format_table, json_safe, write_test_metrics

    if args.all:
        return _evaluate_all(args)
    if not args.model or not args.dataset:
        print("error: give --model and --dataset, or --all for every shipped model", file=sys.stderr)
        return 2
    result = evaluate(
        args.model,
        args.dataset,
        args.data_root,
        split=args.split,
        limit=args.limit or None,
        workers=args.workers,
        ray=args.ray,
        out=args.out or None,
    )
    if args.write:
        write_test_metrics(result)
    if args.json:
        print(json.dumps(json_safe(result), indent=2, allow_nan=False))
    else:
        print(format_table(result))
    return 0


def _evaluate_all(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seg_core.leaderboard import evaluate_all, render_markdown

    if args.split != "test":
        print("error: the leaderboard reports the test split only (drop --split)", file=sys.stderr)
        return 2
    models = [m for m in args.model.split(",") if m] if args.model else None
    board = evaluate_all(
        args.data_root,
        models=models,
        evaluate_test=not args.cost_only,
        readme=Path(__file__).resolve().parent.parent / "README.md",
        report=print,
    )
    print(render_markdown(board))
    return 0


def _select(args: argparse.Namespace) -> int:
    from seg_core.evaluate import select_inference_settings

    selection = select_inference_settings(args.model, args.dataset, args.data_root, split=args.split)
    best = selection["chosen"]
    print(
        f"{args.model}: chose threshold {best['threshold']}, fill holes {best['fill_holes']}, largest component "
        f"{best['largest_component_only']}, flip TTA {best['flip_tta']}: {args.split} Dice {best['dice_mean']:.4f} "
        f"(default settings {selection['default_dice_mean']:.4f})"
    )
    return 0


def _split(args: argparse.Namespace) -> int:
    from seg_core.data import coco_split_from_figshare, open_dataset, split_path, write_split

    path = split_path(args.dataset)
    if path.exists() and not args.force:
        print(f"error: {path} exists; committed splits keep results reproducible (use --force to replace it)", file=sys.stderr)
        return 2
    dataset = open_dataset(args.dataset, args.data_root)
    groups = dataset.groups()
    # Stratified where the adapter knows strata (tumor type, tumor volume, source), so every part
    # gets its share of each kind of patient.
    strata = dataset.strata() if hasattr(dataset, "strata") else None
    fractions = tuple(float(f) for f in args.fractions.split(","))
    # The COCO images are Figshare slices: they inherit the Figshare split, never a split of their own.
    inherited = coco_split_from_figshare(groups) if args.dataset == "coco" else None
    written = write_split(  # type: ignore[arg-type]
        args.dataset, groups, fractions, args.seed, args.note, unit=args.unit, strata=strata, split=inherited
    )
    print(f"wrote {written} ({len(groups)} groups{', stratified' if strata else ''})")
    return 0


def _energy(args: argparse.Namespace) -> int:
    from seg_core.energy import format_table, profile

    try:
        report = profile(
            args.model,
            size=args.size,
            config=args.config,
            repeats=args.repeats,
            threads=args.threads,
            e_mac_pj=args.e_mac_pj,
            e_ac_pj=args.e_ac_pj,
        )
    except ValueError as error:  # e.g. --config given for trained weights
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2, allow_nan=False) if args.json else format_table(report, top=args.top))
    return 0


def _publish(args: argparse.Namespace) -> int:
    from seg_core.weights import publish

    # The token comes from `hf auth login` or $HF_TOKEN, never from the command line (shell history).
    result = publish(
        args.model,
        args.repo,
        revision=args.revision or None,
        endpoint=args.endpoint or None,
        private=True if args.private else None,
        commit_message=args.message or None,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"published {args.model} to {result['commit_url']}")
        print(f"load it pinned to this commit with: --model {result['load']}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from seg_core.api import serve

    serve(host=args.host, port=args.port, weights_dir=args.weights_dir or None, data_root=args.data_root or None)
    return 0


def _add_train(commands: _Subcommands) -> None:
    from seg_core.train.config import add_train_arguments

    train = commands.add_parser("train", help="train an architecture on a dataset's training split")
    add_train_arguments(train)
    train.set_defaults(handler=_train)


def _add_train_zoo(commands: _Subcommands) -> None:
    zoo = commands.add_parser("train-zoo", help="train every architecture of a dataset under one protocol (resumable queue)")
    zoo.add_argument("--dataset", required=True, help="figshare, lgg or brats")
    zoo.add_argument("--data-root", required=True, help="folder holding the dataset folders (e.g. ../shared/data)")
    zoo.add_argument("--budget-minutes", type=float, default=0.0, help="CPU-minutes per model (default: the protocol's)")
    zoo.add_argument("--workers", type=int, default=2, help="jobs at once, one thread each")
    zoo.add_argument(
        "--architectures", default="", help="comma-separated: run only these jobs this time (the naive prior always)"
    )
    zoo.add_argument("--status", action="store_true", help="print the queue and exit")
    zoo.add_argument(
        "--stop-by",
        default="",
        help="start no job whose budget cannot be spent before this UTC time (HH:MM today, or ISO 8601), "
        "e.g. the end of a session whose cache/ will not survive",
    )
    zoo.add_argument("--finalize", default="", help=argparse.SUPPRESS)
    zoo.add_argument("--zoo-dir", default="", help="checkpoints, logs and state (default cache/zoo/<dataset>)")
    zoo.add_argument("--weights-dir", default="", help="where finished models are shipped (default weights/)")
    zoo.set_defaults(handler=_train_zoo)


def _add_models(commands: _Subcommands) -> None:
    models = commands.add_parser("models", help="list architectures and trained weights")
    models.add_argument("--json", action="store_true")
    models.set_defaults(handler=_models)


def _add_segment(commands: _Subcommands) -> None:
    segment = commands.add_parser(
        "segment",
        help="segment a scan and write the mask",
        epilog="exit status: 0 the mask was written; 2 a usage error (bad --out, unknown model, unreadable scan), "
        "reported on one line before any model runs where it can be; 1 an unexpected failure",
    )
    segment.add_argument("inputs", nargs="+", help="image, NIfTI, DICOM file/folder, ZIP, or a BraTS case's files")
    segment.add_argument(
        "--model", required=True, help="weights id, e.g. unet.figshare, a weights folder, or auto (the best fit for the scan)"
    )
    segment.add_argument("--out", required=True, help="mask file: .nii.gz for volumes, .png for 2D images")
    segment.add_argument("--modalities", default="", help="override channel names, e.g. t1c or flair,t1c")
    segment.add_argument("--threshold", type=float, default=None, help="probability threshold (default: the model's)")
    segment.add_argument("--opening", type=int, default=0, help="morphological opening radius in pixels")
    segment.add_argument("--closing", type=int, default=0, help="morphological closing radius in pixels")
    segment.add_argument("--fill-holes", action="store_true")
    segment.add_argument("--largest-component", action="store_true", help="keep only the largest tumor component")
    segment.add_argument("--min-size", type=float, default=0.0, help="drop components below this area in mm^2")
    segment.add_argument("--json", action="store_true", help="print the report as JSON")
    segment.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="where the model runs (auto: ONNX Runtime for conventional nets)",
    )
    segment.add_argument(
        "--flip-tta", choices=("auto", "on", "off"), default="auto", help="left-right flip averaging (auto: the model's choice)"
    )
    segment.set_defaults(handler=_segment)


def _add_batch(commands: _Subcommands) -> None:
    batch = commands.add_parser(
        "batch", help="segment (and evaluate) a cohort: folders of scans or a CSV, resumable, with results.csv and summary.md"
    )
    batch.add_argument("inputs", nargs="+", help="folders of scans (a BraTS or LGG case folder is one case), scan files, or CSVs")
    batch.add_argument("--model", action="append", required=True, help="weights id; repeat for several models")
    batch.add_argument("--out", required=True, help="output folder (masks/, results.csv, summary.md); a rerun resumes")
    batch.add_argument("--workers", type=int, default=None, help="worker processes (default: this machine's cores)")
    batch.add_argument(
        "--ray", default=None, metavar="ADDRESS", help="run on Ray Data: 'auto' (the running cluster), HOST:PORT, or 'local'"
    )
    batch.add_argument("--backend", default="auto", choices=BACKEND_CHOICES)
    batch.add_argument("--parquet", action="store_true", help="also write results.parquet")
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")
    batch.set_defaults(handler=_batch)


def _add_export(commands: _Subcommands) -> None:
    export = commands.add_parser(
        "export", help="export shipped models to ONNX and build their int8 graphs ahead of first use (cached outside git)"
    )
    export.add_argument("--model", default="all", help="weights id, a comma list, or all (default)")
    export.set_defaults(handler=_export)


def _add_quantize(commands: _Subcommands) -> None:
    quantize = commands.add_parser(
        "quantize",
        help="calibrate an int8 ONNX graph; its ranges are kept beside the weights only if validation Dice drops <= 0.005",
    )
    quantize.add_argument("--model", required=True, help="weights id or a comma list")
    quantize.add_argument("--data-root", required=True, help="folder holding the dataset folder (training and validation split)")
    quantize.add_argument("--calibration", type=int, default=64, help="training slices to calibrate the int8 ranges on")
    quantize.set_defaults(handler=_quantize)


def _add_store_int8(commands: _Subcommands) -> None:
    store = commands.add_parser(
        "store-int8", help="store a model's kernels as per-channel int8 (half of float16), only if validation Dice drops <= 0.005"
    )
    store.add_argument("--model", required=True, help="weights id or a comma list")
    store.add_argument("--data-root", required=True, help="folder holding the dataset folder (validation split)")
    store.set_defaults(handler=_store_int8)


def _add_evaluate(commands: _Subcommands) -> None:
    evaluate = commands.add_parser("evaluate", help="evaluate weights on a dataset folder")
    evaluate.add_argument("--model", default="", help="weights id, e.g. unet.figshare (with --all: a comma list to re-measure)")
    evaluate.add_argument("--dataset", default="", help="layout of the folder: figshare, lgg, brats2015, brats, coco")
    evaluate.add_argument(
        "--all",
        action="store_true",
        help="every shipped model on its test split; writes weights/leaderboard.json and the README table",
    )
    evaluate.add_argument("--cost-only", action="store_true", help="with --all: re-profile energy/latency, keep test figures")
    evaluate.add_argument("--data-root", required=True, help="folder holding the dataset folder")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    evaluate.add_argument("--limit", type=int, default=0, help="evaluate only the first N images (volumes)")
    evaluate.add_argument("--write", action="store_true", help="record the figures in weights/<id>/metrics.json")
    evaluate.add_argument("--workers", type=int, default=1, help="worker processes, each loading the model once (seg_core.batch)")
    evaluate.add_argument("--ray", default=None, metavar="ADDRESS", help="run on Ray Data: 'auto', HOST:PORT or 'local'")
    evaluate.add_argument("--out", default="", help="journal finished patients in this folder; a rerun resumes from it")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_evaluate)


def _add_select(commands: _Subcommands) -> None:
    select = commands.add_parser("select", help="choose threshold, post-processing and flip TTA on the validation split")
    select.add_argument("--model", required=True)
    select.add_argument("--dataset", required=True)
    select.add_argument("--data-root", required=True)
    select.add_argument("--split", default="val", choices=["train", "val"])
    select.set_defaults(handler=_select)


def _add_split(commands: _Subcommands) -> None:
    split = commands.add_parser("split", help="write a patient-level split file splits/<dataset>.json")
    split.add_argument("dataset")
    split.add_argument("--data-root", required=True)
    split.add_argument("--fractions", default="0.7,0.15,0.15", help="train,val,test fractions of the groups")
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--note", default="")
    split.add_argument("--unit", default="patient", help="what one group is, recorded in the file")
    split.add_argument("--force", action="store_true", help="replace an existing split file")
    split.set_defaults(handler=_split)


def _add_energy(commands: _Subcommands) -> None:
    energy = commands.add_parser("energy", help="parameters, MACs, synaptic operations, energy estimate and CPU latency")
    energy.add_argument("--model", required=True, help="architecture name (e.g. unet) or weights id (e.g. unet.figshare)")
    energy.add_argument("--size", type=int, default=256, help="input side in pixels (square)")
    energy.add_argument("--config", choices=["lite", "paper"], default=None, help="architecture configuration (default lite)")
    energy.add_argument("--threads", type=int, default=2, help="CPU threads for the latency")
    energy.add_argument("--repeats", type=int, default=5, help="timed runs; the median is reported (0: no timing)")
    energy.add_argument("--top", type=int, default=15, help="layers shown in the table, by energy")
    energy.add_argument("--e-mac-pj", type=float, default=None, help="pJ per dense MAC (default 4.6, Horowitz 2014)")
    energy.add_argument("--e-ac-pj", type=float, default=None, help="pJ per synaptic operation (default 0.9)")
    energy.add_argument("--json", action="store_true")
    energy.set_defaults(handler=_energy)


def _add_publish(commands: _Subcommands) -> None:
    publish = commands.add_parser("publish", help="upload a weights folder to a Hugging Face Hub model repo")
    publish.add_argument("model", help="weights id (e.g. unet.figshare) or weights folder")
    publish.add_argument("--repo", required=True, help="Hub repo <org>/<repo> (created if missing)")
    publish.add_argument("--revision", default="", help="branch to commit to (default main)")
    publish.add_argument("--private", action="store_true", help="create the repo private")
    publish.add_argument("--message", default="", help="commit message")
    publish.add_argument("--endpoint", default="", help="Hub URL (default $HF_ENDPOINT or https://huggingface.co)")
    publish.add_argument("--json", action="store_true")
    publish.set_defaults(handler=_publish)


def _add_serve(commands: _Subcommands) -> None:
    serve = commands.add_parser("serve", help="run the REST API (FastAPI + uvicorn; docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--weights-dir", default="", help="trained weights folder (default weights/)")
    serve.add_argument("--data-root", default="", help="public data sets for /samples (default $BRAINSEG_DATA_ROOT)")
    serve.set_defaults(handler=_serve)


#: One function a subcommand, in the order ``--help`` lists them.
_SUBCOMMANDS = (
    _add_train,
    _add_train_zoo,
    _add_models,
    _add_segment,
    _add_batch,
    _add_export,
    _add_quantize,
    _add_store_int8,
    _add_evaluate,
    _add_select,
    _add_split,
    _add_energy,
    _add_publish,
    _add_serve,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m seg_core", description="BrainSeg Studio: brain tumor segmentation engine.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_subcommand in _SUBCOMMANDS:
        add_subcommand(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or args.command == "train" else logging.WARNING, format="%(message)s")
    if not args.verbose:
        # Decoders warn about the damaged files they are handed (e.g. Pillow's "Corrupt EXIF data");
        # the one `error:` line says what matters. -v shows them.
        warnings.filterwarnings("ignore")
    from seg_core.data import DatasetError
    from seg_core.scans import ScanError
    from seg_core.weights import WeightsError

    try:
        return args.handler(args)
    except (ScanError, WeightsError, DatasetError, KeyError, FileNotFoundError, ConnectionError) as error:
        # Expected problems (a bad file, an unknown model, no Ray cluster at --ray) get one clear line, not a traceback.
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
