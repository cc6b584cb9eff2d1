"""The training queue's protocol, the shipping gate, and model cards whose command reproduces the run."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import fields
from pathlib import Path

import pytest

from seg_core.cli import build_parser
from seg_core.train.config import TrainConfig, command_line, config_from_args
from seg_core.train.zoo import GATE_MARGIN, ZooQueue, protocol_for, shipping_gate_failures, train_command
from seg_core.weights import WEIGHTS_DIR, list_weights


def _parse_train(command: str) -> TrainConfig:
    tokens = shlex.split(command.replace("\\\n", " "))
    assert tokens[:4] == ["python", "-m", "seg_core", "train"], tokens[:4]
    return config_from_args(build_parser().parse_args(tokens[3:]))


def test_zoo_command_is_the_protocol_flag_for_flag(tmp_path):
    protocol = protocol_for("brats", budget_minutes=30)
    command = train_command(protocol, "csa_snn", "../shared/data", tmp_path, teacher="unet.brats", bf16=False)
    config = config_from_args(build_parser().parse_args(command))
    assert (config.arch, config.dataset, config.size, config.threads) == ("csa_snn", "brats", 128, 1)
    assert config.schedule == "cosine_budget" and config.budget_cpu_minutes == 30
    assert config.normalization == {"kind": "zscore_head", "lower": 0.5, "upper": 99.5, "scope": "volume"}
    assert config.teacher == "unet.brats" and not config.bf16
    # Every architecture of a dataset gets the same recipe: only the architecture differs.
    other = config_from_args(build_parser().parse_args(train_command(protocol, "unet", "../shared/data", tmp_path)))
    differing = {f.name for f in fields(TrainConfig) if getattr(config, f.name) != getattr(other, f.name)}
    assert differing == {"arch", "teacher", "checkpoint_dir"}
    with pytest.raises(KeyError, match="unet"):
        protocol_for("figshare", architectures=("unet3d",))


def test_command_line_round_trips_every_setting():
    config = TrainConfig(
        arch="tcsa_snn",
        dataset="lgg",
        model_config={"width": 8, "time_steps": 4},
        preset="",
        size=96,
        schedule="cosine_budget",
        budget_cpu_minutes=12.5,
        bf16=True,
        teacher="attention_unet.lgg",
        normalization={"kind": "zscore", "lower": 1.0, "upper": 99.0, "scope": "slice"},
        out_id="tcsa_snn_t4.lgg",
    )
    assert _parse_train(command_line(config.__dict__)) == config


@pytest.mark.parametrize("model_id", list_weights())
def test_card_command_reproduces_the_recorded_settings(model_id):
    folder = WEIGHTS_DIR / model_id
    card = (folder / "README.md").read_text()
    training = json.loads((folder / "config.json").read_text())["training"]
    found = re.search(r"## Training\n```bash\n(.*?)\n```", card, re.S)
    assert found, f"{model_id}: no training command in the card"
    parsed = _parse_train(found.group(1))
    for item in fields(TrainConfig):
        if item.name in training and item.name != "data_root":
            assert getattr(parsed, item.name) == training[item.name], f"{model_id}: --{item.name.replace('_', '-')}"


def test_shipped_models_clear_the_gate():
    assert shipping_gate_failures() == {}


def _weights(folder: Path, model_id: str, val: float | None) -> None:
    (folder / model_id).mkdir(parents=True)
    (folder / model_id / "config.json").write_text("{}")
    metrics = {"selection": {"chosen": {"dice_mean": val}}} if val is not None else {}
    (folder / model_id / "metrics.json").write_text(json.dumps(metrics))


def test_gate_fails_models_too_close_to_the_naive_prior(tmp_path):
    _weights(tmp_path, "naive_prior.figshare", 0.20)
    _weights(tmp_path, "unet.figshare", 0.20 + GATE_MARGIN + 0.01)
    _weights(tmp_path, "sa_unet.figshare", 0.20 + GATE_MARGIN - 0.01)
    _weights(tmp_path, "unet.lgg", 0.9)  # no naive prior on lgg: cannot show it clears the gate
    _weights(tmp_path, "linknet_ag.figshare", None)
    failures = shipping_gate_failures(tmp_path)
    assert set(failures) == {"sa_unet.figshare", "unet.lgg", "linknet_ag.figshare"}
    assert "naive_prior.lgg" in failures["unet.lgg"]


def test_spiking_jobs_wait_for_a_teacher(tmp_path):
    queue = ZooQueue(protocol_for("figshare", architectures=("unet", "csa_snn")), "../shared/data", tmp_path, tmp_path / "w")
    assert not queue.ready("unet.figshare"), "the gate's reference comes first"
    queue.state["naive_prior.figshare"].update(status="shipped", val_dice=0.2)
    assert queue.ready("unet.figshare") and not queue.ready("csa_snn.figshare")
    queue.state["unet.figshare"].update(status="shipped", val_dice=0.7)
    assert queue.ready("csa_snn.figshare") and queue.teacher() == "unet.figshare"
    assert "--teacher" in queue.command("csa_snn.figshare") and "unet.figshare" in queue.command("csa_snn.figshare")


def test_status_lines_show_each_shipped_models_recorded_test_figure_training_and_time_steps(tmp_path):
    from seg_core.leaderboard import leaderboard_row
    from seg_core.train.zoo import status_lines

    queue = ZooQueue(protocol_for("figshare"), "../shared/data", tmp_path, WEIGHTS_DIR)
    shipped = [model_id for model_id in queue.state if (WEIGHTS_DIR / model_id / "config.json").is_file()]
    assert shipped, "no figshare weights shipped"
    for model_id in queue.state:
        queue.state[model_id]["status"] = "shipped" if model_id in shipped else "pending"
    lines = dict(zip(queue.state, status_lines(queue)[1:], strict=True))
    for model_id in shipped:
        row = leaderboard_row(model_id, WEIGHTS_DIR)
        assert f" {row['primary_mean']:.4f} " in lines[model_id], lines[model_id]
        assert lines[model_id].endswith(f" {row['time_steps']}" if row["time_steps"] else " -")
        if row.get("budget_cpu_minutes") and row["architecture"] not in ("naive_prior", "pixel_classifier"):
            assert f"of {row['budget_cpu_minutes']:.0f} CPU-min" in lines[model_id]
    assert all(lines[m].split()[1] == "pending" and len(lines[m].split()) == 2 for m in queue.state if m not in shipped)


def test_a_lost_queue_state_is_rebuilt_from_the_shipped_weights(tmp_path):
    """A new checkout has no cache/: models shipped under the protocol are not trained again."""
    queue = ZooQueue(protocol_for("brats"), "../shared/data", tmp_path / "zoo", WEIGHTS_DIR)
    shipped = [m for m, job in queue.state.items() if job["status"] == "shipped"]
    on_disk = [m for m in queue.state if (WEIGHTS_DIR / m / "config.json").is_file()]
    assert on_disk and shipped == on_disk
    assert all(queue.state[m]["val_dice"] > 0 for m in shipped)
    # A model trained under another recipe (here another budget) is trained again.
    other = ZooQueue(protocol_for("brats", budget_minutes=5), "../shared/data", tmp_path / "other", WEIGHTS_DIR)
    assert all(job["status"] == "pending" for job in other.state.values())


def test_stop_by_keeps_the_queue_from_starting_jobs_that_cannot_finish(tmp_path):
    from datetime import UTC, datetime, timedelta

    from seg_core.train.zoo import parse_stop_by, run_queue

    def queue(folder):
        zoo = ZooQueue(protocol_for("figshare", architectures=("unet",)), "../shared/data", tmp_path / folder, tmp_path / "w")
        zoo.state["naive_prior.figshare"].update(status="shipped", val_dice=0.2)
        return zoo

    soon = datetime.now(UTC) + timedelta(minutes=30)  # less than the 60 CPU-minute budget
    held = run_queue(queue("held"), poll_s=0.01, python="/bin/false", stop_by=soon)
    assert held["unet.figshare"]["status"] == "pending", "a job that cannot finish is not started"
    # Without the limit the job starts (and, with /bin/false as the interpreter, fails at once).
    started = run_queue(queue("started"), poll_s=0.01, python="/bin/false", stop_by=soon + timedelta(hours=2))
    assert started["unet.figshare"]["status"] == "failed"

    now = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
    assert parse_stop_by("06:10", now) == datetime(2026, 12, 5, 6, 10, tzinfo=UTC)
    assert parse_stop_by("02:00", now) == datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    assert parse_stop_by("2026-12-05T06:10", now) == datetime(2026, 12, 5, 6, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="HH:MM"):
        parse_stop_by("soon", now)
