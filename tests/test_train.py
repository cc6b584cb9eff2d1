"""End-to-end training on real figshare slices: a few tiny epochs, checkpoint, resume, energy record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seg_core import train as train_module
from seg_core.data import load_split
from seg_core.train import TrainConfig, arrays, checkpoint, loop, train
from seg_core.weights import load_model

pytestmark = pytest.mark.data


@pytest.fixture
def small_split(monkeypatch, tmp_path):
    """Two id blocks to train on and one to validate on, caches and checkpoints in a temporary folder."""
    real = load_split("figshare")
    monkeypatch.setattr(loop, "load_split", lambda dataset: {"train": real["train"][:2], "val": real["val"][:1], "test": []})
    monkeypatch.setattr(arrays, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(checkpoint, "RUNS_DIR", tmp_path / "runs")
    return tmp_path


def _config(data_root, weights_dir, epochs: int) -> TrainConfig:
    return TrainConfig(
        arch="unet",
        dataset="figshare",
        data_root=str(data_root),
        model_config={"width": 4},
        size=32,
        epochs=epochs,
        batch_size=8,
        lr=3e-3,
        schedule="cosine",
        bf16=True,
        threads=1,
        weights_dir=str(weights_dir),
    )


def test_train_checkpoint_resume_and_energy_record(data_root, small_split) -> None:
    weights_dir = small_split / "weights"
    first = train(_config(data_root, weights_dir, epochs=2), progress=False)
    assert first["epochs_run"] == 2 and 0.0 <= first["best_val_dice"] <= 1.0
    assert first["energy_kwh"] > 0 and first["tracked_s"] > 0 and "codecarbon" in first["energy_method"]
    checkpoint = torch.load(small_split / "runs" / "unet.figshare" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 1

    resumed = train(_config(data_root, weights_dir, epochs=3), resume=True, progress=False)
    assert resumed["epochs_run"] == 3
    # Energy is summed over the resumed runs, never restarted from zero.
    assert resumed["energy_kwh"] > first["energy_kwh"]
    metrics = json.loads((weights_dir / "unet.figshare" / "metrics.json").read_text())
    assert [row["epoch"] for row in metrics["training"]["history"]][0] == 0
    assert metrics["training"]["epochs_run"] == 3
    assert metrics["training"]["energy"]["energy_kwh"] == pytest.approx(resumed["energy_kwh"])
    card = (weights_dir / "unet.figshare" / "README.md").read_text()
    assert "kWh" in card

    loaded = load_model(weights_dir / "unet.figshare")
    assert loaded.config["training"]["schedule"] == "cosine" and loaded.config["training"]["bf16"] is True
    # Trained under bfloat16 autocast: inference may run the same way where the hardware allows.
    assert loaded.config["inference_dtype"] == "bfloat16"
    with torch.inference_mode():
        out = loaded.model(torch.zeros(1, 1, 32, 32))
    assert out.shape == (1, 1, 32, 32) and torch.isfinite(out).all()


def test_a_spent_time_budget_counts_only_the_epochs_that_ran(data_root, small_split) -> None:
    weights_dir = small_split / "weights"
    train(_config(data_root, weights_dir, epochs=1), progress=False)
    config = _config(data_root, weights_dir, epochs=4)
    config.max_minutes = 1e-9  # spent before the resumed run's first epoch starts
    summary = train(config, resume=True, progress=False)
    assert summary["epochs_run"] == 1
    assert json.loads((weights_dir / "unet.figshare" / "metrics.json").read_text())["training"]["epochs_run"] == 1


def test_fine_tuning_inherits_the_architecture_settings(data_root, small_split) -> None:
    weights_dir = small_split / "weights"
    train(_config(data_root, weights_dir, epochs=1), progress=False)
    config = _config(data_root, weights_dir, epochs=1)
    config.model_config = {}  # nothing given: the width comes from the initial weights
    config.init_from = str(weights_dir / "unet.figshare")
    config.out_id = "unet_tuned.figshare"
    summary = train(config, progress=False)
    assert summary["epochs_run"] == 1
    assert load_model(weights_dir / "unet_tuned.figshare").config["model_config"]["width"] == 4
    # The fine-tune's record keeps where it started from, with that run's settings and cost.
    metrics = json.loads((weights_dir / "unet_tuned.figshare" / "metrics.json").read_text())
    initial = metrics["training"]["initial"]
    assert initial["id"] == "unet.figshare" and initial["command"]["epochs"] == 1 and initial["epochs_run"] == 1
    assert "energy_kwh" in initial["energy"]

    # A fine-tune of that fine-tune: its card lists the whole chain, earliest run first.
    config.init_from = str(weights_dir / "unet_tuned.figshare")
    config.out_id = "unet_tuned_twice.figshare"
    train(config, progress=False)
    card = (weights_dir / "unet_tuned_twice.figshare" / "README.md").read_text()
    assert card.index("Step 1 of 3, the `unet.figshare` run") < card.index("Step 2 of 3, the `unet_tuned.figshare` run")


def test_unknown_schedule_is_refused(data_root, small_split) -> None:
    config = _config(data_root, small_split / "weights", epochs=1)
    config.schedule = "warmup"
    with pytest.raises(ValueError, match="plateau"):
        train(config, progress=False)


def test_crop_training_learns_on_patches_and_validates_whole_images(data_root, small_split) -> None:
    from seg_core.train import augmentation

    transform = augmentation(seed=0, crop=16)
    image = torch.rand(1, 32, 32).numpy()
    mask = torch.zeros(1, 32, 32)
    mask[0, 20:24, 4:8] = 1
    patches = [train_module._one(transform({"image": image.copy(), "mask": mask.numpy().copy()})) for _ in range(12)]
    assert all(tuple(p["image"].shape) == (1, 16, 16) and tuple(p["mask"].shape) == (1, 16, 16) for p in patches)
    # Two in three crops are centred on tumor: most patches hold some of it.
    assert sum(bool(np.asarray(p["mask"]).any()) for p in patches) >= 6

    config = _config(data_root, small_split / "weights", epochs=1)
    config.crop = 16
    summary = train(config, progress=False)
    assert summary["epochs_run"] == 1
    loaded = load_model(small_split / "weights" / "unet.figshare")
    assert loaded.config["input_size"] == [32, 32] and loaded.config["training"]["crop"] == 16

    config.crop = 64  # larger than the 32 px training size
    with pytest.raises(ValueError, match="crop"):
        train(config, progress=False)


def test_strong_augmentation_keeps_image_and_mask_aligned_and_reaches_further(data_root, small_split) -> None:
    from seg_core.train import augmentation

    # A bright square whose mask is the square itself: whatever geometry is applied, the
    # transformed image must still be brightest where the transformed mask is.
    image = np.zeros((1, 64, 64), np.float32)
    image[0, 20:44, 16:40] = 1.0
    mask = (image > 0).astype(np.float32)

    def area_ratios(strength: str) -> np.ndarray:
        transform = augmentation(seed=0, strength=strength)
        ratios = []
        for _ in range(150):
            out = train_module._one(transform({"image": image.copy(), "mask": mask.copy()}))
            moved_image, moved_mask = np.asarray(out["image"])[0], np.asarray(out["mask"])[0]
            assert set(np.unique(moved_mask)) <= {0.0, 1.0}  # nearest-neighbour labels stay binary
            inside, outside = moved_image[moved_mask > 0].mean(), moved_image[moved_mask == 0].mean()
            assert inside > outside + 0.3
            ratios.append(moved_mask.sum() / mask.sum())
        return np.array(ratios)

    standard, strong = area_ratios("standard"), area_ratios("strong")
    # Scaling by up to 25 % instead of 15 % changes the tumor's area by up to ~56 % instead of ~32 %.
    assert np.abs(np.log(strong)).max() > np.abs(np.log(standard)).max() + 0.1

    with pytest.raises(ValueError, match="standard, strong"):
        augmentation(seed=0, strength="extreme")

    config = _config(data_root, small_split / "weights", epochs=1)
    config.augment = "strong"
    assert train(config, progress=False)["epochs_run"] == 1
    assert load_model(small_split / "weights" / "unet.figshare").config["training"]["augment"] == "strong"


def test_weight_averaging_validates_exports_and_resumes_the_average(data_root, small_split) -> None:
    weights_dir = small_split / "weights"
    config = _config(data_root, weights_dir, epochs=1)
    config.ema_decay = 0.9
    train(config, progress=False)
    checkpoint = torch.load(small_split / "runs" / "unet.figshare" / "checkpoint.pt", weights_only=True)
    exported = load_model(weights_dir / "unet.figshare").model.state_dict()
    averaged = {key.removeprefix("module."): value for key, value in checkpoint["averaged"].items()}
    raw = checkpoint["model"]
    name = "encoders.0.0.weight"  # the U-Net's first convolution
    # The exported weights are the average (stored as float16), not the last optimiser step.
    torch.testing.assert_close(exported[name].float(), averaged[name].half().float())
    assert not torch.allclose(averaged[name], raw[name])
    # Its BatchNorm statistics are recomputed for the averaged weights, not the averaged buffers.
    statistic = "encoders.0.1.running_var"
    assert not torch.allclose(exported[statistic].float(), averaged[statistic].half().float(), atol=1e-3)
    steps_per_epoch = int(checkpoint["averaged"]["n_averaged"])  # one update per optimiser step
    assert steps_per_epoch >= 1

    config.epochs = 2
    summary = train(config, resume=True, progress=False)
    assert summary["epochs_run"] == 2
    resumed = torch.load(small_split / "runs" / "unet.figshare" / "checkpoint.pt", weights_only=True)
    assert int(resumed["averaged"]["n_averaged"]) == 2 * steps_per_epoch  # continued, not restarted
    assert "--ema-decay 0.9" in (weights_dir / "unet.figshare" / "README.md").read_text()

    config.ema_decay = 1.0
    with pytest.raises(ValueError, match="ema_decay"):
        train(config, progress=False)


def test_batchnorm_recalibration_recomputes_statistics_on_a_copy() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    model[1].running_mean.fill_(5.0)
    model[1].running_var.fill_(9.0)
    images = np.random.default_rng(0).normal(3.0, 2.0, size=(12, 1, 4, 4)).astype(np.float16)
    recalibrated = train_module.recalibrate_batchnorm(model, images, torch.device("cpu"), batch_size=4, bf16=False)
    with torch.no_grad():
        features = model[0](torch.from_numpy(images.astype(np.float32)))
    # Equal batches: the cumulative average of batch means is the mean over all images.
    torch.testing.assert_close(recalibrated[1].running_mean, features.mean(dim=(0, 2, 3)))
    assert not recalibrated.training
    assert torch.all(model[1].running_mean == 5.0) and torch.all(model[1].running_var == 9.0)  # the original is untouched


def test_a_resumed_run_equals_an_unbroken_one(data_root, small_split) -> None:
    # Two epochs in one go, and one epoch then a resumed second: model, optimiser, scheduler, random
    # states and the per-epoch augmentation seeds must all be restored for the weights to agree.
    config = _config(data_root, small_split / "weights", epochs=2)
    config.bf16 = False
    config.schedule = "plateau"  # a cosine schedule's length is the epoch count, which differs between the runs
    config.checkpoint_dir = str(small_split / "unbroken")
    train(config, progress=False)
    unbroken = torch.load(small_split / "unbroken" / "checkpoint.pt", weights_only=True)

    config.checkpoint_dir = str(small_split / "broken")
    config.epochs = 1
    train(config, progress=False)
    config.epochs = 2
    train(config, resume=True, progress=False)
    resumed = torch.load(small_split / "broken" / "checkpoint.pt", weights_only=True)
    assert resumed["epoch"] == unbroken["epoch"] == 1
    for name, value in unbroken["model"].items():
        torch.testing.assert_close(resumed["model"][name], value, msg=name)


def test_a_cpu_budget_stops_the_run_and_is_recorded(data_root, small_split) -> None:
    weights_dir = small_split / "weights"
    config = _config(data_root, weights_dir, epochs=100_000)
    config.schedule = "cosine_budget"
    config.patience = 100_000  # only the budget may stop it
    config.budget_cpu_minutes = 0.05  # 3 CPU-seconds
    summary = train(config, progress=False)
    assert summary["stopped"] == "budget" and summary["epochs_run"] >= 1
    training = json.loads((weights_dir / "unet.figshare" / "metrics.json").read_text())["training"]
    assert training["stopped"] == "budget" and training["cpu_minutes"] >= 0.05
    assert training["history"][-1]["lr"] < config.lr  # annealed as the budget was spent
    # The whole learning curve is recorded, past the best epoch too.
    assert [row["epoch"] for row in training["history"]] == list(range(summary["epochs_run"]))
    # Resuming a spent budget trains nothing more.
    assert train(config, resume=True, progress=False)["epochs_run"] == summary["epochs_run"]

    config.budget_cpu_minutes = 0.0
    with pytest.raises(ValueError, match="budget"):
        train(config, progress=False)


def test_budget_learning_rate_anneals_from_base_to_zero() -> None:
    assert train_module.budget_learning_rate(1e-3, 0.0) == pytest.approx(1e-3)
    assert train_module.budget_learning_rate(1e-3, 0.5) == pytest.approx(5e-4)
    assert train_module.budget_learning_rate(1e-3, 1.0) == pytest.approx(0.0, abs=1e-12)
    assert train_module.budget_learning_rate(1e-3, 2.0) == pytest.approx(0.0, abs=1e-12)


def test_validation_per_volume_pools_slices_of_a_patient() -> None:
    # Patient 0: two slices, the model finds half the tumor on one and nothing on the other.
    masks = np.zeros((3, 1, 4, 4), np.uint8)
    masks[0, 0, :2] = 1  # 8 tumor pixels
    masks[1, 0, :1] = 1  # 4 tumor pixels
    predicted = np.zeros((3, 1, 4, 4), np.float32)
    predicted[0, 0, :1] = 1  # 4 of them found
    # Patient 1: one empty slice predicted empty.
    arrays = {"images": predicted.astype(np.float16), "masks": masks, "groups": np.array([0, 0, 1], np.int32)}

    class Identity(torch.nn.Module):
        def forward(self, x):  # logits: +10 where the "image" is 1, -10 elsewhere
            return x * 20 - 10

    device = torch.device("cpu")
    per_image = train_module.validate(Identity(), arrays, device, batch_size=2)
    per_volume = train_module.validate(Identity(), arrays, device, batch_size=2, per_volume=True)
    assert per_image == pytest.approx((2 * 4 / 12 + 0.0 + 1.0) / 3)
    assert per_volume == pytest.approx((2 * 4 / (4 + 12) + 1.0) / 2)


def test_distillation_loss_is_smallest_where_student_matches_teacher() -> None:
    teacher = torch.tensor([[-3.0, 0.5, 2.0]])
    student = teacher.clone().requires_grad_(True)
    train_module.distillation_loss(student, teacher, temperature=2.0).backward()
    torch.testing.assert_close(student.grad, torch.zeros_like(teacher), atol=1e-7, rtol=0)
    assert train_module.distillation_loss(-teacher, teacher, 2.0) > train_module.distillation_loss(teacher, teacher, 2.0)


def test_random_states_survive_a_weights_only_round_trip(tmp_path) -> None:
    import random

    from seg_core.train.checkpoint import random_states, restore_random_states

    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    path = tmp_path / "states.pt"
    torch.save(random_states(), path)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    restore_random_states(torch.load(path, weights_only=True))
    drawn = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(drawn[0], expected[0])
    np.testing.assert_array_equal(drawn[1], expected[1])
    assert drawn[2] == expected[2]


def test_a_budget_stop_raises_the_recorded_cpu_time_never_lowers_it(tmp_path) -> None:
    from seg_core.train.checkpoint import CpuClock, record_budget_spent

    path = tmp_path / "checkpoint.pt"
    record_budget_spent(path, CpuClock(), torch.device("cpu"))  # no checkpoint yet: nothing to record
    assert not path.exists()
    torch.save({"cpu_s": 5.0}, path)
    record_budget_spent(path, CpuClock(before_s=7.0), torch.device("cpu"))
    assert torch.load(path, weights_only=True)["cpu_s"] >= 7.0
    record_budget_spent(path, CpuClock(before_s=0.0), torch.device("cpu"))
    assert torch.load(path, weights_only=True)["cpu_s"] >= 7.0


def test_the_stop_before_an_epoch_names_its_reason() -> None:
    import time

    from seg_core.train.checkpoint import CpuClock
    from seg_core.train.loop import stop_before_epoch

    config = TrainConfig(patience=2)
    now = time.monotonic()
    assert stop_before_epoch(config, epoch=3, best_epoch=1, wall_start=now, clock=CpuClock()) is None
    assert stop_before_epoch(config, epoch=4, best_epoch=1, wall_start=now, clock=CpuClock()) == "early_stop"
    config.max_minutes = 1.0
    assert stop_before_epoch(config, epoch=0, best_epoch=-1, wall_start=now - 120, clock=CpuClock()) == "max_minutes"
    config.max_minutes, config.budget_cpu_minutes = 0.0, 1.0
    assert stop_before_epoch(config, epoch=0, best_epoch=-1, wall_start=now, clock=CpuClock(before_s=60.0)) == "budget"
    assert stop_before_epoch(config, epoch=0, best_epoch=-1, wall_start=now, clock=CpuClock(before_s=0.0)) is None


def test_augmented_batches_keep_shapes_and_binary_masks() -> None:
    from seg_core.train.augment import augmentation, augmented_batch

    rng = np.random.default_rng(0)
    arrays = {
        "images": rng.normal(size=(5, 2, 16, 16)).astype(np.float16),
        "masks": (rng.random((5, 1, 16, 16)) > 0.7).astype(np.uint8),
    }
    images, masks = augmented_batch(arrays, np.array([4, 0, 2]), augmentation(seed=0), torch.device("cpu"))
    assert images.shape == (3, 2, 16, 16) and images.dtype == torch.float32
    assert masks.shape == (3, 1, 16, 16) and set(torch.unique(masks).tolist()) <= {0.0, 1.0}


def test_the_training_record_keeps_every_epoch_past_the_best_one(tmp_path) -> None:
    import shutil

    from seg_core.train.record import record_training_totals
    from seg_core.weights import WEIGHTS_DIR, record_metrics

    config = TrainConfig(weights_dir=str(tmp_path))
    rows = [
        {"epoch": e, "loss": 1.0 - e / 10, "val_dice": [0.5, 0.7, 0.6][e], "elapsed_s": 60.0 * (e + 1), "cpu_s": 50.0 * (e + 1)}
        for e in range(3)
    ]
    (tmp_path / config.model_id).mkdir()
    shutil.copy(WEIGHTS_DIR / config.model_id / "config.json", tmp_path / config.model_id)  # for the model card
    # What export() wrote when epoch 1 was the best: the curve up to it.
    record_metrics(tmp_path / config.model_id, "training", {"val_dice_per_image": 0.7, "best_epoch": 1, "history": rows[:2]})
    energy = {"energy_kwh": 0.001, "emissions_kg": 0.0004, "tracked_s": 150.0, "energy_method": "test", "carbon_country": "DEU"}
    record_training_totals(config, energy, rows, 3, "budget")
    training = json.loads((tmp_path / config.model_id / "metrics.json").read_text())["training"]
    assert [row["epoch"] for row in training["history"]] == [0, 1, 2] and training["best_epoch"] == 1
    assert training["epochs_run"] == 3 and training["cpu_minutes"] == 2.5


def test_array_cache_is_never_seen_half_written(data_root, small_split, monkeypatch) -> None:
    """The queue starts jobs side by side: a cache file interrupted while being written must not be readable."""
    config = _config(data_root, small_split / "weights", epochs=1)
    groups = load_split("figshare")["val"][:1]
    real_savez = np.savez

    def interrupted(stream, **arrays_to_write):
        stream.write(b"PK\x03\x04 half of a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(arrays.np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        arrays.load_arrays(config, "val", groups)
    assert not list((small_split / "cache").iterdir()), "a half-written cache file would be read by the next job"
    monkeypatch.setattr(arrays.np, "savez", real_savez)
    first = arrays.load_arrays(config, "val", groups)
    again = arrays.load_arrays(config, "val", groups)
    assert np.array_equal(first["images"], again["images"]) and len(first["masks"]) == len(again["masks"]) > 0
