"""Explanations: Captum attributions for every registered model, deletion curves, spiking activity.

Models are built narrow (width 8 where the architecture has one) and inputs are 64x64, so the whole
file runs in well under a minute on two cores.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from seg_core.explain import (
    DELETION_FRACTIONS,
    METHOD_INFO,
    METHODS,
    RegionLogitSum,
    attribute,
    default_gradcam_layer,
    deletion_curve,
    explain_slice,
    explain_spiking,
    gradcam_layers,
    is_spiking,
    random_deletion_curve,
    resize_map,
    slice_input,
    tumor_region,
)
from seg_core.explain.layers import _TimeFolded
from seg_core.inference import Segmenter
from seg_core.models import create_model, get_spec, list_models
from seg_core.models.blocks.spiking import LIF
from seg_core.spiking import record
from seg_core.weights import LoadedModel

SPIKING = [name for name in list_models() if get_spec(name).spiking]


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    config = dict(get_spec(name).lite_config)
    if "width" in config:
        config["width"] = 8
    if name == "deeplab_aspp":
        config["layers"] = [1, 1, 1, 1]
    if name == "pixel_classifier":
        config.update(n_samples=2000, n_reference=200)
    return create_model(name, in_channels=1, **config).eval()


def blob_image(size: int = 64) -> torch.Tensor:
    """A normalised 'slice': dim disk of a head with a bright blob, (1, 1, size, size) in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    head = ((y / 0.9) ** 2 + (x / 0.75) ** 2 < 1).float() * 0.35
    blob = (((y + 0.2) ** 2 + (x - 0.3) ** 2) < 0.05).float() * 0.6
    return (head + blob)[None, None]


class BrightPixels(nn.Module):
    """A transparent 'segmenter': a pixel is tumor when it is bright (logit 20 (x - 0.5))."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 20 * (x[:, :1] - 0.5)


@pytest.mark.parametrize("name", list_models())
def test_every_method_explains_every_registered_model(name: str) -> None:
    net = build(name)
    if name == "pixel_classifier":
        net.fit(blob_image().numpy(), (blob_image().numpy() > 0.5).astype(np.uint8))
    x = blob_image()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    region, source = tumor_region(net, x)
    assert region.shape == (64, 64) and region.dtype == torch.bool and region.any()
    assert source in ("prediction", "top_logits")
    for method in METHODS:
        result = attribute(net, x, method, region, n_steps=4)
        assert result.method == method and result.title == METHOD_INFO[method]["title"]
        assert result.heatmap.shape == (64, 64) and result.heatmap.dtype == np.float32
        assert np.isfinite(result.attribution).all() and np.isfinite(result.heatmap).all()
        assert result.heatmap.min() >= 0.0 and result.heatmap.max() <= 1.0
        assert result.attribution.shape[-2:] == (64, 64)
        if method == "gradcam":
            assert result.layer is not None or result.note
        if name == "naive_prior" and method != "occlusion":
            assert result.note and result.heatmap.max() == 0  # the prior ignores the image, and says so
        elif get_spec(name).trainable and method in ("saliency", "integrated_gradients"):
            assert np.abs(result.attribution).max() > 0, f"{name} {method}: {result.note}"
            assert result.heatmap.max() > 0 or result.note
    # The explained model is a private copy: the caller's model and its outputs are untouched.
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


def test_region_logit_sum_is_one_number_per_image() -> None:
    net = BrightPixels()
    region = torch.zeros(8, 8, dtype=torch.bool)
    region[2:4, 2:5] = True
    x = torch.rand(3, 1, 8, 8)
    out = RegionLogitSum(net, region)(x)
    assert out.shape == (3,)
    assert torch.allclose(out, (net(x)[:, 0] * region).sum(dim=(1, 2)))


def test_region_falls_back_to_the_highest_logits_when_nothing_is_predicted() -> None:
    x = blob_image() * 0.5  # nothing reaches 0.5, so BrightPixels predicts no tumor
    region, source = tumor_region(BrightPixels(), x)
    assert source == "top_logits" and int(region.sum()) == round(0.005 * 64 * 64)
    assert float(x[0, 0][region].min()) >= float(x[0, 0][~region].max())  # the brightest pixels


def test_saliency_of_a_transparent_model_is_its_region_and_beats_random_deletion() -> None:
    net, x = BrightPixels(), blob_image()
    region, source = tumor_region(net, x)
    assert source == "prediction"
    saliency = attribute(net, x, "saliency", region)
    # d(sum of region logits)/dx is 20 inside the region and 0 outside: the map is the region.
    assert np.array_equal(saliency.heatmap > 0.5, region.numpy())
    curve = deletion_curve(net, x, saliency.heatmap, region, method="saliency")
    reference = random_deletion_curve(net, x, region)
    assert curve.fractions.tolist() == list(DELETION_FRACTIONS)
    assert curve.dice[0] == pytest.approx(1.0) and curve.probability[0] > 0.5
    assert np.all(np.diff(curve.dice) <= 1e-6)  # deleting more never helps here
    assert curve.auc_dice < reference.auc_dice and curve.auc_probability < reference.auc_probability
    assert reference.spread is not None and reference.spread.shape == curve.dice.shape
    assert set(curve.to_dict()) >= {"auc_dice", "auc_probability", "fractions", "dice"}


def test_integrated_gradients_add_up_to_the_score_change() -> None:
    net = build("unet")
    x = blob_image()
    region, _ = tumor_region(net, x)
    result = attribute(net, x, "integrated_gradients", region, n_steps=32)
    assert result.convergence_delta is not None and result.convergence_delta < 0.05
    with torch.no_grad():
        target = RegionLogitSum(net, region)
        change = float(target(x) - target(torch.zeros_like(x)))
    assert float(result.attribution.sum()) == pytest.approx(change, rel=0.05, abs=1e-3)


def test_occlusion_needs_no_gradient_and_finds_the_bright_blob() -> None:
    net, x = BrightPixels(), blob_image()
    region, _ = tumor_region(net, x)
    result = attribute(net, x, "occlusion", region, window=8)
    heat = torch.from_numpy(result.heatmap)
    assert heat[region].mean() > 5 * heat[~region].mean()
    assert "8x8" in result.note


def test_gradcam_layers_default_and_unknown_layer() -> None:
    net, x = build("unet"), blob_image()
    layers = gradcam_layers(net, x)
    names = [info.name for info in layers]
    assert "bottleneck" in names and default_gradcam_layer(layers).name == "bottleneck"
    assert all(min(info.size) >= 2 and info.channels >= 2 for info in layers)
    region, _ = tumor_region(net, x)
    chosen = attribute(net, x, "gradcam", region, layer="decoders.2")
    assert chosen.layer == "decoders.2"
    with pytest.raises(ValueError, match="bottleneck"):
        attribute(net, x, "gradcam", region, layer="no.such.layer")
    with pytest.raises(ValueError, match="saliency"):
        attribute(net, x, "lime", region)
    with pytest.raises(ValueError, match="one image"):
        attribute(net, torch.rand(2, 1, 64, 64), "saliency", region)


@pytest.mark.parametrize("name", SPIKING)
def test_gradcam_on_a_spiking_block_sees_every_time_step(name: str) -> None:
    net, x = build(name), blob_image()
    layers = {info.name: info for info in gradcam_layers(net, x)}
    block = layers["stages.1"]
    assert block.time_first and block.time_steps == get_spec(name).time_steps
    region, _ = tumor_region(net, x)
    result = attribute(net, x, "gradcam", region, layer="stages.1")
    assert result.layer == "stages.1" and np.isfinite(result.heatmap).all()
    assert not any(isinstance(m, _TimeFolded) for m in net.modules())  # only the private copy was wrapped


def test_time_folding_keeps_a_spiking_models_output_bit_identical() -> None:
    import copy

    net, x = build("tcsa_snn"), blob_image()
    wrapped = copy.deepcopy(net)
    wrapped.stages._modules["1"] = _TimeFolded(wrapped.stages[1])
    with torch.inference_mode():
        assert torch.equal(net(x), wrapped(x))


@pytest.mark.parametrize("name", SPIKING)
def test_spiking_activity_per_block_and_time_step(name: str) -> None:
    net = build(name)
    x = torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    region, _ = tumor_region(net, x)
    activity = explain_spiking(net, x, region, neurons=32)
    steps = get_spec(name).time_steps
    assert activity.time_steps == steps and len(activity.blocks) == sum((3, 4, 6, 3))
    first = activity.blocks[0]
    assert first.name == "stages.0.0" and first.label == "stage 1, block 1"
    assert first.rate_maps.shape == (steps, 16, 16) and first.spatial.shape == (16, 16)
    assert first.input_rate_maps.shape == (steps, 32, 32)
    assert first.channel.shape == (8,)
    for block in activity.blocks:
        assert block.step_attention.shape == (steps, *block.size)
        assert block.rate_maps.min() >= 0 and block.rate_maps.max() <= 1
        assert block.spatial.min() >= 0 and block.spatial.max() <= 1
        if name == "tcsa_snn":
            assert block.temporal.shape == (steps,)
            expected = block.temporal[:, None, None] * block.spatial[None]
            assert np.allclose(block.step_attention, expected)
        else:
            assert block.temporal is None and np.allclose(block.step_attention, block.spatial[None])
    assert activity.rate_matrix().shape == (16, steps)
    raster = activity.raster
    assert raster.spikes.shape == (32, steps) and raster.spikes.dtype == bool
    assert len(raster.labels) == len(raster.layers) == len(raster.in_tumor) == 32
    assert set(raster.layers) <= {f"{b.name}.{lif}" for b in activity.blocks for lif in ("lif1", "lif2")}
    assert 0.0 <= raster.fired_fraction <= 1.0
    # The summary agrees with a plain recording of the same pass.
    with torch.inference_mode(), record(net) as rec:
        net(x)
    for layer, rates in activity.layer_rates.items():
        assert rates.shape == (steps,)
        assert float(rates.mean()) == pytest.approx(float(rec.spikes[layer].float().mean()), abs=1e-6)


def test_spiking_explanation_refuses_a_conventional_model() -> None:
    net = build("unet")
    assert is_spiking(build("tcsa_snn")) and not is_spiking(net)
    with pytest.raises(ValueError, match="spiking"):
        explain_spiking(net, blob_image())


def test_surrogate_gradients_reach_the_input_of_a_spiking_model() -> None:
    net, x = build("tcsa_snn"), torch.randn(1, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    region, _ = tumor_region(net, x)
    result = attribute(net, x, "saliency", region)
    assert result.heatmap.max() > 0 and any(isinstance(m, LIF) for m in net.modules())


def test_explain_slice_of_a_phantom_with_a_segmenter(tmp_path: Path) -> None:
    from seg_core.samples import load_sample

    scan, _ = load_sample("phantom-2d")
    net = build("unet")
    preprocessing = {"modalities": ["t1c"], "input_size": [64, 64], "normalization": {"kind": "percentile"}, "threshold": 0.5}
    config = {"architecture": "unet", "model_config": {"width": 8, "in_channels": 1}, **preprocessing}
    segmenter = Segmenter(LoadedModel(net, config, tmp_path / "unet.test"))
    x = slice_input(segmenter, scan, 0)
    assert x.shape == (1, 1, 64, 64) and float(x.min()) >= 0 and float(x.max()) <= 1
    with pytest.raises(ValueError, match="outside"):
        slice_input(segmenter, scan, 3)
    seen: list[str] = []
    result = explain_slice(
        segmenter, scan, 0, ("saliency", "gradcam"), n_steps=4, progress=lambda done, total, label: seen.append(label)
    )
    assert set(result.attributions) == {"saliency", "gradcam"} and set(result.curves) == {"saliency", "gradcam", "random"}
    assert result.image.shape == (1, 64, 64) and result.probability.shape == (64, 64) and result.spiking is None
    assert result.region.shape == (64, 64) and result.layers
    table = result.faithfulness_table()
    assert [row["key"] for row in table] == ["saliency", "gradcam", "random"]
    assert all(0 <= row["auc_dice"] <= 1 for row in table)
    assert seen[-1] == "done"
    big = resize_map(result.attributions["saliency"].heatmap, scan.shape[1:])
    assert big.shape == scan.shape[1:]
    with pytest.raises(ValueError, match="unknown"):
        explain_slice(segmenter, scan, 0, ("lime",))
