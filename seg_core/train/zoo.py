"""The training queue: every architecture of a dataset under one protocol, resumable across sessions.

``python -m seg_core train-zoo --dataset figshare --data-root ../shared/data --budget-minutes 60``

Each (model, dataset) job is the exact ``python -m seg_core train ...`` command its model card shows,
run as a subprocess with ``--resume``, so a stopped queue continues every job from its last
checkpoint (model, optimiser, random states, epoch, CPU time spent). Per dataset every architecture
gets the same recipe (split, augmentation, DiceCE loss, learning rate annealed over the budget,
input size, normalisation) and the same budget in CPU-minutes. Spiking models come last and are
distilled from the best shipped conventional network of the dataset.

When a job's training ends, the queue chooses threshold, post-processing and flip TTA on the
validation patients (``select``), applies the shipping gate (validation Dice at least
:data:`GATE_MARGIN` above the naive prior's), and copies a passing model into ``weights/``, its kernels
stored as int8 where validation holds (``store-int8``), with its test-split figures; a model that fails leaves ``weights/``. Checkpoints, logs and the queue's state
live under ``cache/zoo/<dataset>/`` (outside git).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seg_core.models import get_spec
from seg_core.weights import WEIGHTS_DIR, record_metrics

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
ZOO_DIR = ROOT / "cache" / "zoo"
GATE_MARGIN = 0.10
REFERENCE = "naive_prior"

# Conventional networks first (the spiking models' teachers), the baselines before them (the gate's
# reference), spiking models last.
ARCHITECTURES = (
    "naive_prior",
    "pixel_classifier",
    "unet",
    "attention_unet",
    "sa_unet",
    "linknet_ag",
    "segnet_ag",
    "deeplab_aspp",
    "unet_sspp",
    "attention_snn",
    "csa_snn",
    "tcsa_snn",
)


@dataclass(frozen=True)
class Protocol:
    """The recipe every architecture of one dataset is trained with."""

    dataset: str
    budget_minutes: float
    size: int = 128
    batch_size: int = 16
    lr: float = 1e-3
    augment: str = "standard"
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"kind": "percentile", "lower": 0.5, "upper": 99.5, "scope": "slice"}
    )
    seed: int = 0
    architectures: tuple[str, ...] = ARCHITECTURES


PROTOCOLS = {
    "figshare": Protocol("figshare", budget_minutes=60),
    "lgg": Protocol("lgg", budget_minutes=45),
    # Raw 2018 intensities and z-scored 2015 files made alike: z-score inside the head, per volume.
    "brats": Protocol(
        "brats", budget_minutes=45, normalization={"kind": "zscore_head", "lower": 0.5, "upper": 99.5, "scope": "volume"}
    ),
}


def protocol_for(dataset: str, budget_minutes: float | None = None, architectures: tuple[str, ...] = ()) -> Protocol:
    """The dataset's protocol; ``budget_minutes`` overrides its budget, ``architectures`` limits this run's jobs."""
    try:
        protocol = PROTOCOLS[dataset]
    except KeyError:
        raise KeyError(f"no training protocol for {dataset!r}; choose one of: {', '.join(PROTOCOLS)}") from None
    unknown = sorted(set(architectures) - set(ARCHITECTURES))
    if unknown:
        raise KeyError(f"not in the zoo: {', '.join(unknown)}; choose from: {', '.join(ARCHITECTURES)}")
    changes: dict[str, Any] = {}
    if budget_minutes:
        changes["budget_minutes"] = budget_minutes
    if architectures:
        # The reference always runs first: the gate needs its validation figure.
        changes["architectures"] = tuple(a for a in ARCHITECTURES if a in architectures or a == REFERENCE)
    return Protocol(**{**protocol.__dict__, **changes})


def bf16_available() -> bool:
    """bfloat16 autocast only where the CPU computes it natively; float32 elsewhere."""
    import torch

    from seg_core.inference import fast_bfloat16

    return fast_bfloat16(torch.device("cpu"))


def train_command(
    protocol: Protocol, arch: str, data_root: str, folder: Path, teacher: str = "", bf16: bool = False
) -> list[str]:
    """The complete ``train`` command line of one job (without the interpreter), every flag explicit."""
    model_id = f"{arch}.{protocol.dataset}"
    # Relative to the repository (the queue runs its jobs there), so model cards carry no machine paths.
    folder = folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder
    command = [
        "train", "--arch", arch, "--dataset", protocol.dataset, "--data-root", data_root,
        "--preset", "lite", "--size", str(protocol.size), "--epochs", "1000", "--batch-size", str(protocol.batch_size),
        "--lr", str(protocol.lr), "--patience", "1000", "--seed", str(protocol.seed), "--threads", "1",
        "--schedule", "cosine_budget", "--budget-cpu-minutes", str(protocol.budget_minutes),
        "--augment", protocol.augment, "--normalization", json.dumps(protocol.normalization),
        "--weights-dir", str(folder / "weights"), "--checkpoint-dir", str(folder / "runs" / model_id),
    ]  # fmt: skip
    if teacher:
        command += ["--teacher", teacher]
    if bf16:
        command.append("--bf16")
    return command + ["--resume", "--no-progress"]


class ZooQueue:
    """The jobs of one dataset and their state in ``cache/zoo/<dataset>/state.json``.

    A job's status: ``pending`` -> ``trained`` (its training command exited normally) -> ``shipped``
    (copied into ``weights/``) or ``gated_out`` (not above the naive prior by the margin); ``failed``
    when the command exited with an error (its log says why; rerun the queue to retry).
    """

    def __init__(self, protocol: Protocol, data_root: str, folder: Path | None = None, weights_dir: Path = WEIGHTS_DIR):
        self.protocol = protocol
        self.data_root = data_root
        self.folder = Path(folder or ZOO_DIR / protocol.dataset)
        self.weights_dir = Path(weights_dir)
        self.state_path = self.folder / "state.json"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.state: dict[str, dict[str, Any]] = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        for arch in protocol.architectures:
            if self.model_id(arch) not in self.state:
                self.state[self.model_id(arch)] = self.recovered(arch) or {"arch": arch, "status": "pending"}

    def model_id(self, arch: str) -> str:
        return f"{arch}.{self.protocol.dataset}"

    def recovered(self, arch: str) -> dict[str, Any] | None:
        """A job's state rebuilt from its shipped weights, when the cache folder was lost (a new
        checkout starts without it) and ``weights/`` holds the model trained under this protocol:
        its recorded training settings equal the protocol's, so it is not trained again."""
        from seg_core.cli import build_parser
        from seg_core.train.config import config_from_args

        folder = self.weights_dir / self.model_id(arch)
        config_path = folder / "config.json"
        if not config_path.is_file() or validation_figure(folder) is None:
            return None
        recorded = json.loads(config_path.read_text()).get("training") or {}
        command = train_command(self.protocol, arch, self.data_root, self.folder)
        expected = config_from_args(build_parser().parse_args(command)).__dict__
        # Where the run lived, its teacher and its precision depend on the machine and the queue's
        # progress, not on the recipe.
        machine_specific = {"data_root", "weights_dir", "checkpoint_dir", "teacher", "bf16", "device"}
        if any(recorded.get(name) != value for name, value in expected.items() if name not in machine_specific):
            return None
        return {"arch": arch, "status": "shipped", "val_dice": validation_figure(folder), "recovered_from": str(folder)}

    def save(self) -> None:
        self.state_path.write_text(json.dumps(self.state, indent=1) + "\n")

    def pending(self) -> list[str]:
        """Jobs to (re)start: never started, or interrupted while running (they resume)."""
        return [
            model_id
            for model_id, job in self.state.items()
            if job["status"] in ("pending", "running") and job["arch"] in self.protocol.architectures
        ]

    def teacher(self) -> str | None:
        """The shipped conventional model of this dataset with the best validation figure, or ``None``."""
        shipped = [
            (job["val_dice"], model_id)
            for model_id, job in self.state.items()
            if job["status"] == "shipped" and not get_spec(job["arch"]).spiking and get_spec(job["arch"]).trainable
        ]
        return max(shipped)[1] if shipped else None

    def ready(self, model_id: str) -> bool:
        """Spiking jobs wait for their teacher while conventional jobs are still to finish."""
        arch = self.state[model_id]["arch"]
        if arch != REFERENCE and self.state[self.model_id(REFERENCE)]["status"] not in ("shipped", "trained"):
            return False  # the gate needs the reference's validation figure first
        if not get_spec(arch).spiking:
            return True
        conventional_left = any(
            job["status"] in ("pending", "running", "failed") and not get_spec(job["arch"]).spiking for job in self.state.values()
        )
        return self.teacher() is not None or not conventional_left

    def command(self, model_id: str) -> list[str]:
        job = self.state[model_id]
        if "command" not in job:  # fixed at first launch, so a resumed job keeps its teacher and precision
            teacher = self.teacher() if get_spec(job["arch"]).spiking else None
            job["command"] = train_command(
                self.protocol, job["arch"], self.data_root, self.folder, teacher or "", bf16_available()
            )
            self.save()
        return job["command"]

    def finalize(self, model_id: str) -> dict[str, Any]:
        """Select on validation, apply the gate, and ship (or withdraw) the model; returns the job's new fields.

        Runs in a process of its own (``train-zoo --finalize``), which reads the queue's state but
        never writes it: the queue merges the returned fields, so two writers never race.
        """
        from seg_core.evaluate import evaluate, select_inference_settings, write_test_metrics
        from seg_core.leaderboard import inference_cost
        from seg_core.store_int8 import store_int8

        job = self.state[model_id]
        trained = self.folder / "weights"
        if not (trained / model_id).is_dir():
            return {"status": "failed", "error": "training exported no weights (no epoch was validated)"}
        selection = select_inference_settings(model_id, self.protocol.dataset, self.data_root, weights_dir=trained)
        result: dict[str, Any] = {"val_dice": selection["chosen"]["dice_mean"]}
        reference = result["val_dice"] if job["arch"] == REFERENCE else self.state[self.model_id(REFERENCE)].get("val_dice")
        shipped_folder = self.weights_dir / model_id
        if job["arch"] != REFERENCE and (reference is None or result["val_dice"] < reference + GATE_MARGIN):
            if shipped_folder.exists():
                shutil.rmtree(shipped_folder)
            log.warning(
                "%s: validation Dice %.4f is not %.2f above the naive prior's; not shipped",
                model_id,
                result["val_dice"],
                GATE_MARGIN,
            )
            return {**result, "status": "gated_out", "reference_val_dice": reference}
        if shipped_folder.exists():
            shutil.rmtree(shipped_folder)
        shutil.copytree(trained / model_id, shipped_folder)
        if get_spec(job["arch"]).trainable:  # int8 kernels keep weights/ within its size budget, if validation holds
            result["storage"] = store_int8(model_id, self.data_root, self.weights_dir)["accepted"]
        evaluation = evaluate(model_id, self.protocol.dataset, self.data_root, split="test", weights_dir=self.weights_dir)
        write_test_metrics(evaluation, self.weights_dir)
        record_metrics(shipped_folder, "inference_cost", inference_cost(model_id, self.weights_dir))
        result["test_dice"] = evaluation.get("volume_dice_mean", evaluation["dice_mean"])
        log.info("%s shipped: validation %.4f, test %.4f", model_id, result["val_dice"], result["test_dice"])
        return {**result, "status": "shipped"}

    def result_path(self, model_id: str) -> Path:
        return self.folder / f"{model_id}.result.json"


def validation_figure(folder: Path) -> float | None:
    """The validation Dice ``select`` chose for a weights folder (per image or per patient), or ``None``."""
    path = folder / "metrics.json"
    selection = json.loads(path.read_text()).get("selection") if path.exists() else None
    return float(selection["chosen"]["dice_mean"]) if selection else None


def shipping_gate_failures(weights_dir: Path = WEIGHTS_DIR, margin: float = GATE_MARGIN) -> dict[str, str]:
    """``{model id: why}`` for every shipped model that does not beat its dataset's naive prior by ``margin``.

    The figure is the validation Dice recorded by ``select`` (test is never used to decide what ships);
    a model whose dataset has no shipped naive prior, or with no selection record, cannot show that
    it clears the gate, and fails it.
    """
    failures = {}
    for folder in sorted(path for path in Path(weights_dir).iterdir() if (path / "config.json").is_file()):
        arch, _, dataset = folder.name.partition(".")
        if arch == REFERENCE:
            continue
        figure = validation_figure(folder)
        reference = validation_figure(Path(weights_dir) / f"{REFERENCE}.{dataset}")
        if figure is None:
            failures[folder.name] = "no validation selection recorded"
        elif reference is None:
            failures[folder.name] = f"no shipped {REFERENCE}.{dataset} to compare with"
        elif figure < reference + margin:
            failures[folder.name] = f"validation Dice {figure:.4f} < {REFERENCE} {reference:.4f} + {margin}"
    return failures


def run_queue(
    queue: ZooQueue,
    workers: int = 2,
    poll_s: float = 10.0,
    python: str = sys.executable,
    stop_by: datetime | None = None,
) -> dict[str, dict]:
    """Run every unfinished job until none is left: at most ``workers`` processes at once, one thread each.

    A job's training and its shipping (``finalize``) are separate processes; shipping goes first
    when a slot frees up, and waits for the naive prior's, whose figure the gate needs.

    ``stop_by`` (a time the machine will be gone, e.g. the end of a session whose cache folder does
    not survive) keeps the queue from starting a training job whose budget cannot be spent before it:
    one thread spends a CPU-minute in a minute at best. Running jobs and shipping still finish.
    """
    training: dict[str, tuple[subprocess.Popen, Any]] = {}
    shipping: dict[str, tuple[subprocess.Popen, Any]] = {}
    held_back: set[str] = set()
    for job in queue.state.values():
        if job["status"] == "failed":  # each run of the queue retries a failed job once
            job["status"] = "pending"
    queue.save()

    def launch(model_id: str, arguments: list[str], suffix: str) -> tuple[subprocess.Popen, Any]:
        log_file = (queue.folder / f"{model_id}{suffix}.log").open("a")
        command = [python, "-m", "seg_core", *arguments]
        log.info("starting %s: %s", model_id, " ".join(command))
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=ROOT), log_file

    while True:
        reference_done = queue.state[queue.model_id(REFERENCE)]["status"] == "shipped"
        for model_id, job in queue.state.items():
            if len(training) + len(shipping) >= workers:
                break
            if job["status"] == "trained" and model_id not in shipping and (reference_done or job["arch"] == REFERENCE):
                queue.result_path(model_id).unlink(missing_ok=True)
                finalize = ["train-zoo", "--dataset", queue.protocol.dataset, "--data-root", queue.data_root]
                finalize += ["--zoo-dir", str(queue.folder), "--weights-dir", str(queue.weights_dir)]
                shipping[model_id] = launch(model_id, [*finalize, "--finalize", model_id], ".ship")
        too_late = stop_by is not None and datetime.now(UTC) + timedelta(minutes=queue.protocol.budget_minutes) > stop_by
        for model_id in queue.pending():
            if len(training) + len(shipping) >= workers:
                break
            if model_id in training or not queue.ready(model_id):
                continue
            if too_late:
                if model_id not in held_back:
                    log.info("%s not started: its %.0f CPU-minutes would not be spent by %s", model_id,
                             queue.protocol.budget_minutes, stop_by.isoformat(timespec="minutes"))  # fmt: skip
                    held_back.add(model_id)
                continue
            training[model_id] = launch(model_id, queue.command(model_id), "")
            queue.state[model_id]["status"] = "running"
            queue.save()
        if not training and not shipping:
            break
        time.sleep(poll_s)
        for model_id, (process, log_file) in list(training.items()):
            if process.poll() is None:
                continue
            log_file.close()
            del training[model_id]
            failed = {"status": "failed", "error": f"exit {process.returncode}; see {queue.folder / (model_id + '.log')}"}
            queue.state[model_id].update({"status": "trained"} if process.returncode == 0 else failed)
            queue.save()
        for model_id, (process, log_file) in list(shipping.items()):
            if process.poll() is None:
                continue
            log_file.close()
            del shipping[model_id]
            result_path = queue.result_path(model_id)
            if process.returncode == 0 and result_path.exists():
                queue.state[model_id].update(json.loads(result_path.read_text()))
            else:
                queue.state[model_id].update(
                    status="failed", error=f"shipping exit {process.returncode}; see {queue.folder / (model_id + '.ship.log')}"
                )
            queue.save()
    return queue.state


STATUS_HEADER = f"{'model':<28} {'status':<10} {'val':>6} {'test':>6}  {'training':<28} {'train kWh':>9} {'mJ/image':>8} {'T':>2}"


def status_lines(queue: ZooQueue) -> list[str]:
    """The queue's jobs, one line each: status and validation Dice, and for a shipped model what the
    leaderboard records (test figure, per patient for volumes), what its training spent of the
    budget, the training energy, the inference energy per image and the spiking time steps."""
    from seg_core.leaderboard import leaderboard_row, training_summary

    lines = [STATUS_HEADER]
    for model_id, job in queue.state.items():
        val = f"{job['val_dice']:.4f}" if "val_dice" in job else ""
        line = f"{model_id:<28} {job['status']:<10} {val:>6}"
        if job["status"] == "shipped" and (queue.weights_dir / model_id / "config.json").is_file():
            row = leaderboard_row(model_id, queue.weights_dir)
            kwh, mj = row.get("train_energy_kwh"), row.get("energy_mj")
            line += (
                f" {_figure(row.get('primary_mean')):>6}  {training_summary(row):<28} {_figure(kwh):>9} {_figure(mj, 3):>8}"
                f" {row.get('time_steps') or '-':>2}"
            )
        lines.append(line.rstrip())
    return lines


def _figure(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def parse_stop_by(text: str, now: datetime | None = None) -> datetime:
    """``--stop-by``: ``HH:MM`` (UTC, the next such time) or an ISO 8601 time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    try:
        if len(text) <= 5 and ":" in text:
            hours, minutes = (int(part) for part in text.split(":"))
            moment = now.replace(hour=hours, minute=minutes, second=0, microsecond=0)
            return moment if moment > now else moment + timedelta(days=1)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--stop-by {text!r}: give HH:MM (UTC) or an ISO 8601 time such as 2026-12-05T06:10") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
