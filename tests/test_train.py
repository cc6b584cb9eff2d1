"""End-to-end training on real figshare slices: a few tiny epochs, checkpoint, resume, energy record."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from seg_core import train as train_module
from seg_core.train import TrainConfig, train
from seg_core.weights import load_model

pytestmark = pytest.mark.data


@pytest.fixture
def small_split(monkeypatch, tmp_path):
    """Two id blocks to train on and one to validate on, caches and checkpoints in a temporary folder."""
    real = train_module.load_split("figshare")
    monkeypatch.setattr(
        train_module, "load_split", lambda dataset: {"train": real["train"][:2], "val": real["val"][:1], "test": []}
    )
    monkeypatch.setattr(train_module, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(train_module, "RUNS_DIR", tmp_path / "runs")
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
