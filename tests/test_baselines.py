"""The closed-form baselines: naive prior and classical pixel classifier.

The registry-wide tests (tests/test_models.py) already cover shapes, determinism and save/load of the
unfitted models; these check what fitting computes, that the torch re-implementations decide exactly
as scikit-learn does, and the training hook.
"""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.tree import DecisionTreeClassifier

from seg_core.metrics import batch_dice
from seg_core.models import baselines, create_model, get_spec, naive_prior, pixel_classifier
from seg_core.models.baselines import (
    export_knn,
    export_ridge,
    export_tree,
    feature_names,
    knn_probability,
    pixel_features,
    ridge_probability,
    tree_probability,
)
from seg_core.weights import load_model, save_pretrained

# Small fits keep the suite fast on a shared CPU.
SMALL = {"n_samples": 4000, "n_reference": 600}


def bright_blobs(n: int = 4, size: int = 64, channels: int = 1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy dark images with one bright disc each (the tumor), at a different place in every image."""
    rng = np.random.default_rng(seed)
    images = rng.normal(0.2, 0.05, (n, channels, size, size)).astype(np.float32)
    masks = np.zeros((n, 1, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 8) ** 2
        masks[i, 0][disc] = 1
        images[i][:, disc] += 0.5
    return images, masks


def dice(net: torch.nn.Module, images: np.ndarray, masks: np.ndarray) -> float:
    with torch.inference_mode():
        predicted = torch.sigmoid(net.eval()(torch.from_numpy(images))) >= 0.5
    return float(batch_dice(predicted, torch.from_numpy(masks) >= 1).mean())


# ---- naive prior ------------------------------------------------------------------------------


def test_naive_prior_map_is_the_mean_of_the_masks() -> None:
    masks = (np.random.default_rng(0).random((5, 1, 64, 64)) < 0.3).astype(np.uint8)
    prior = create_model("naive_prior", map_size=64).fit(np.zeros((5, 1, 64, 64), np.float32), masks)
    assert torch.equal(prior.frequency, torch.from_numpy(masks[:, 0].mean(0).astype(np.float32)))
    assert int(prior.fitted_masks) == 5
    # A coarser map holds the tumor fraction of each 2x2 block.
    coarse = create_model("naive_prior", map_size=32).fit(np.zeros((5, 1, 64, 64), np.float32), masks)
    blocks = masks[:, 0].reshape(5, 32, 2, 32, 2).mean(axis=(0, 2, 4))
    torch.testing.assert_close(coarse.frequency, torch.from_numpy(blocks.astype(np.float32)))


def test_naive_prior_ignores_the_image_and_thresholds_at_half_the_masks() -> None:
    masks = np.zeros((4, 1, 64, 64), dtype=np.uint8)
    masks[:1, :, 0:10] = 1  # rows 0-9: tumor in 1 of 4 masks
    masks[:2, :, 10:20] = 1  # rows 10-19: 2 of 4, exactly half
    masks[:3, :, 20:30] = 1  # rows 20-29: 3 of 4
    prior = create_model("naive_prior", map_size=64).fit(np.zeros((4, 1, 64, 64), np.float32), masks).eval()
    with torch.inference_mode():
        logits = prior(torch.randn(2, 1, 64, 64))
        # Equal up to float rounding: the logit's vectorised and scalar paths may differ in the last bit.
        torch.testing.assert_close(logits, prior(torch.zeros(2, 1, 64, 64)), rtol=0, atol=1e-5)
    tumor = torch.sigmoid(logits[0, 0]) >= 0.5
    assert not tumor[:10].any() and tumor[10:30].all() and not tumor[30:].any()
    torch.testing.assert_close(logits[0, 0, 25, 0], torch.logit(torch.tensor(0.75)))
    assert torch.isfinite(logits).all()  # frequencies 0 and 1 are clamped before the logit


def test_naive_prior_finds_a_tumor_that_never_moves() -> None:
    masks = np.zeros((4, 1, 128, 128), dtype=np.uint8)
    masks[:, :, 40:80, 50:90] = 1
    prior = create_model("naive_prior").fit(np.zeros((4, 1, 128, 128), np.float32), masks)  # 64x64 map, upsampled
    assert dice(prior, np.random.default_rng(0).random((2, 1, 128, 128), dtype=np.float32), masks[:2]) > 0.95
    # The map is resized to the input, not padded or cropped: at 240 px the square scales with the image.
    with torch.inference_mode():
        tumor = torch.sigmoid(prior(torch.zeros(1, 1, 240, 240)))[0, 0] >= 0.5
    assert tumor[95, 120] and not tumor[60, 120] and not tumor[95, 60]


# ---- pixel features ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 3])
def test_pixel_features_shapes_and_names(channels: int) -> None:
    features = pixel_features(torch.rand(2, channels, 20, 24), scales=(3, 7, 15))
    assert features.shape == (2, channels * 8 + 2, 20, 24) and features.dtype == torch.float32
    assert len(feature_names(channels, (3, 7, 15))) == features.shape[1]
    assert create_model("pixel_classifier", in_channels=channels).n_features == features.shape[1]


def test_local_mean_std_gradient_and_position_by_hand() -> None:
    # A linear ramp f(y, x) = (16 y + x) / 256 on a 16x16 image: every window's mean is its centre
    # value, and the population variance of a 3x3 window is (16^2 + 1) * (2/3) / 256^2.
    ramp = (16 * torch.arange(16.0)[:, None] + torch.arange(16.0)[None]) / 256
    names = feature_names(1, (3, 7))
    features = dict(zip(names, pixel_features(ramp[None, None], scales=(3, 7))[0], strict=True))
    y, x = 5, 6
    assert features["intensity[c0]"][y, x] == ramp[y, x]
    torch.testing.assert_close(features["mean3[c0]"][y, x], ramp[y, x])
    torch.testing.assert_close(features["std3[c0]"][y, x], torch.tensor((257 * 2 / 3) ** 0.5 / 256))
    torch.testing.assert_close(features["std7[c0]"][y, x], torch.tensor((257 * 4) ** 0.5 / 256))  # var of -3..3 is 4
    torch.testing.assert_close(features["gradient[c0]"][y, x], torch.tensor(257**0.5 / 256))  # Sobel / 8: exact slope
    assert features["y"][y, x] == (y + 0.5) / 16 and features["x"][y, x] == (x + 0.5) / 16
    # At the corner the window is reflected: rows and columns (1, 0, 1).
    corner = np.array([[17, 16, 17], [1, 0, 1], [17, 16, 17]]) / 256
    torch.testing.assert_close(features["mean3[c0]"][0, 0], torch.tensor(corner.mean(), dtype=torch.float32))
    torch.testing.assert_close(features["std3[c0]"][0, 0], torch.tensor(corner.std(), dtype=torch.float32))


# ---- torch re-implementations equal scikit-learn ----------------------------------------------


def random_problem(n: int = 3000, n_features: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, n_features)).astype(np.float32)
    score = features[:, 0] + np.sin(2 * features[:, 1]) - 0.5 * features[:, 2] * features[:, 3]
    labels = (score + rng.normal(scale=0.5, size=n) > 0).astype(np.int64)
    test = rng.normal(size=(2000, n_features)).astype(np.float32)
    return features, labels, test


def test_torch_tree_equals_sklearn_even_exactly_at_the_thresholds() -> None:
    features, labels, test = random_problem()
    tree = DecisionTreeClassifier(max_depth=8, min_samples_leaf=5, random_state=0).fit(features, labels)
    # Points lying on (the float32 roundings of) split thresholds, where a careless export goes the wrong way.
    splits = np.flatnonzero(tree.tree_.children_left >= 0)
    on_threshold = np.repeat(test[:1], 2 * len(splits), axis=0)
    for row, node in enumerate(splits):
        value = np.float32(tree.tree_.threshold[node])
        on_threshold[2 * row, tree.tree_.feature[node]] = value
        on_threshold[2 * row + 1, tree.tree_.feature[node]] = np.nextafter(value, np.float32(np.inf))
    test = np.concatenate([test, features[:500], on_threshold])
    state = export_tree(tree, max_nodes=2**9 - 1)
    ours = tree_probability(torch.from_numpy(test), **state, depth=8)
    theirs = torch.from_numpy(tree.predict_proba(test)[:, 1].astype(np.float32))
    assert torch.equal(ours, theirs)
    with pytest.raises(ValueError, match="max_depth"):
        export_tree(tree, max_nodes=7)


def test_torch_ridge_equals_sklearn() -> None:
    features, labels, test = random_problem()
    ridge = Ridge(alpha=1.0).fit(features.astype(np.float64), labels.astype(np.float64))
    ours = ridge_probability(torch.from_numpy(test), **export_ridge(ridge))
    theirs = torch.from_numpy(np.clip(ridge.predict(test.astype(np.float64)), 0, 1).astype(np.float32))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)  # float32 vs float64 arithmetic, nothing more


def test_torch_knn_equals_sklearn_up_to_near_ties() -> None:
    features, labels, test = random_problem()
    bank, bank_labels = features[:800], labels[:800]
    knn = KNeighborsClassifier(n_neighbors=15).fit(bank, bank_labels)
    state = export_knn(bank, bank_labels, max_references=1000)
    size = int(state["size"])
    assert size == 800 and not state["bank"][size:].any()
    ours = knn_probability(torch.from_numpy(test), state["bank"][:size], state["labels"][:size], k=15, chunk=300)
    theirs = torch.from_numpy(knn.predict_proba(test)[:, 1].astype(np.float32))
    differs = (ours - theirs).abs() > 1e-6
    # Only neighbours at (nearly) equal distances may be swapped: one vote either way, in very few pixels.
    assert differs.float().mean() < 0.005
    assert ((ours - theirs).abs() <= 1 / 15 + 1e-6).all()


def test_knn_without_references_predicts_background() -> None:
    assert not knn_probability(torch.rand(10, 4), torch.zeros(0, 4), torch.zeros(0), k=15).any()


# ---- the pixel classifier end to end ----------------------------------------------------------


@pytest.fixture(scope="module")
def fitted() -> tuple[torch.nn.Module, np.ndarray, np.ndarray]:
    images, masks = bright_blobs()
    return create_model("pixel_classifier", **SMALL).fit(images, masks).eval(), images, masks


@pytest.mark.parametrize("member", ["ensemble", "ridge", "tree", "knn"])
def test_pixel_classifier_segments_bright_blobs(fitted, member: str) -> None:
    net, images, masks = fitted
    chosen = create_model("pixel_classifier", member=member, **SMALL)
    chosen.load_state_dict(net.state_dict())
    score = dice(chosen, images, masks)
    assert score > (0.8 if member == "ensemble" else 0.7), f"{member}: Dice {score:.3f}"
    # And on blobs it has never seen, in other places.
    new_images, new_masks = bright_blobs(seed=1)
    assert dice(chosen, new_images, new_masks) > (0.8 if member == "ensemble" else 0.7)


def test_pixel_classifier_fit_is_deterministic(fitted) -> None:
    net, images, masks = fitted
    again = create_model("pixel_classifier", **SMALL).fit(images, masks)
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key


@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_sample_and_bank_keep_the_asked_class_ratio(fraction: float) -> None:
    images, masks = bright_blobs()  # about 5 % tumor: 4000 samples at 0.5 would need more tumor pixels than exist
    net = create_model("pixel_classifier", positive_fraction=fraction, n_samples=8000, n_reference=500).fit(images, masks)
    # The root of the tree holds the whole sample, so its class-1 fraction is the sample's.
    assert abs(float(net.tree_value[0]) - fraction) < 1e-3
    size = int(net.knn_size)
    assert size == 500 and abs(float(net.knn_labels[:size].mean()) - fraction) < 1e-2


def test_pixel_classifier_handles_several_channels() -> None:
    images, masks = bright_blobs(channels=3)
    images[:, 1] = 0.0  # an empty channel: constant features must not divide by zero
    net = create_model("pixel_classifier", in_channels=3, **SMALL).fit(images, masks)
    assert torch.isfinite(net.feature_std).all() and dice(net, images, masks) > 0.8
    with pytest.raises(ValueError, match="3 channel"):
        net(torch.zeros(1, 1, 32, 32))


def test_unfitted_models_predict_background() -> None:
    for name in ("naive_prior", "pixel_classifier"):
        net = create_model(name).eval()
        with torch.inference_mode():
            assert (torch.sigmoid(net(torch.rand(1, 1, 32, 32))) < 0.5).all(), name


def test_bad_configs_and_data_are_refused() -> None:
    with pytest.raises(ValueError, match="ensemble"):
        create_model("pixel_classifier", member="forest")
    with pytest.raises(ValueError, match="odd"):
        create_model("pixel_classifier", scales=[4])
    with pytest.raises(ValueError, match="both tumor and background"):
        create_model("pixel_classifier", **SMALL).fit(np.zeros((2, 1, 32, 32), np.float32), np.zeros((2, 1, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        create_model("naive_prior").fit(np.zeros((2, 1, 32, 32), np.float32), np.zeros((2, 32, 32), np.uint8))


@pytest.mark.parametrize("name", ["naive_prior", "pixel_classifier"])
def test_fitted_state_survives_save_and_load_exactly(name: str, tmp_path) -> None:
    images, masks = bright_blobs()
    config = {"in_channels": 1, **SMALL} if name == "pixel_classifier" else {"in_channels": 1}
    net = create_model(name, **config).fit(images, masks).eval()
    weights_config = {"architecture": name, "model_config": config, "modalities": ["t1c"], "input_size": [64, 64]}
    save_pretrained(net, weights_config, tmp_path / "m", half=False)  # as train.export stores closed-form models
    loaded = load_model(tmp_path / "m").model
    with torch.inference_mode():
        assert torch.equal(net(torch.from_numpy(images)), loaded(torch.from_numpy(images)))


def test_registry_entries() -> None:
    for name in ("naive_prior", "pixel_classifier"):
        spec = get_spec(name)
        assert not spec.trainable and spec.family == "baseline" and spec.paper_config == spec.lite_config


@pytest.mark.parametrize("module", [baselines, naive_prior, pixel_classifier])
def test_docstring_examples_run(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---- the training hook ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["naive_prior", "pixel_classifier"])
def test_fit_closed_form_fits_validates_and_exports(name: str, tmp_path) -> None:
    from seg_core.train import TrainConfig, fit_closed_form

    train_images, train_masks = bright_blobs(n=6, seed=0)
    val_images, val_masks = bright_blobs(n=3, seed=1)
    # The training cache stores float16 images; fit must accept them as they are.
    train_arrays = {"images": train_images.astype(np.float16), "masks": train_masks}
    val_arrays = {"images": val_images.astype(np.float16), "masks": val_masks}
    model_config = {"in_channels": 1, **(SMALL if name == "pixel_classifier" else {})}
    config = TrainConfig(arch=name, dataset="synthetic", size=64, weights_dir=str(tmp_path), model_config=model_config)
    model = create_model(name, **model_config)
    summary = fit_closed_form(model, config, get_spec(name), ["t1c"], model_config, train_arrays, val_arrays, torch.device("cpu"))
    assert summary["model_id"] == f"{name}.synthetic" and summary["epochs_run"] == 1
    if name == "pixel_classifier":
        assert summary["best_val_dice"] > 0.8
    loaded = load_model(tmp_path / f"{name}.synthetic")
    assert loaded.config["stored_dtype"] == "float32"  # fitted thresholds and banks are not rounded to float16
    x = torch.from_numpy(val_images)
    with torch.inference_mode():
        assert torch.equal(model.eval()(x), loaded.model(x))
