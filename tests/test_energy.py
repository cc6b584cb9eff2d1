"""Compute-cost accounting: MACs against hand counts, SOPs against known spike patterns, energy, latency.

Spiking registry models are covered by being registered: the spiking test is parametrised over
``list_models()``. Inputs stay at 8-64 px and timing at 1-3 runs on one thread (a shared CPU).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from seg_core import energy
from seg_core.energy import FUNCTIONAL_ROW, format_table, phantom_sample, profile, profile_model
from seg_core.models import create_model, get_spec, list_models

REPO = Path(__file__).resolve().parent.parent
SPIKING_MODELS = [name for name in list_models() if get_spec(name).spiking]
FAST = {"repeats": 0, "threads": 1}


class ConvLinear(nn.Module):
    """conv 1->4 3x3 (padding 1) on 8x8, then a linear 256->10 on the flattened features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


class ConvUp(nn.Module):
    """conv 1->4 3x3 on 8x8, then a 2x2 stride-2 transposed conv 4->2 (8x8 -> 16x16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 2, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.conv(x))


class Repeated(nn.Module):
    """The same conv called ``steps`` times, as a spiking network calls a layer once per time step."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps
        self.conv = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum(self.conv(x) for _ in range(self.steps))


class KnownSpikes(nn.Module):
    """Dense conv on the image, then ``conv2`` fed fixed spike maps with known rates, one per step.

    Each ``patterns[t]`` is a ``(1, 4, 8, 8)`` binary map with exactly ``rates[t]`` of its values
    equal to one, so the expected SOPs are ``sum_t MACs_step x rates[t]``.
    """

    def __init__(self, rates: tuple[float, ...]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 2, 3, padding=1)
        patterns = []
        for t, rate in enumerate(rates):
            flat = torch.zeros(4 * 8 * 8)
            flat[torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(t))[: round(rate * flat.numel())]] = 1
            patterns.append(flat.view(1, 4, 8, 8))
        self.register_buffer("patterns", torch.stack(patterns))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dense = self.conv1(x)
        return dense.mean() + sum(self.conv2(spikes) for spikes in self.patterns)


class TinySNN(nn.Module):
    """Direct-encoded snnTorch network: conv -> LIF -> conv -> LIF -> 1x1 head, over ``steps``."""

    def __init__(self, steps: int = 4) -> None:
        super().__init__()
        import snntorch as snn

        self.steps = steps
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.lif1 = snn.Leaky(beta=0.9)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.lif2 = snn.Leaky(beta=0.9)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()  # membranes passed explicitly
        out = 0
        for _ in range(self.steps):
            spikes1, mem1 = self.lif1(self.conv1(4 * x), mem1)
            spikes2, mem2 = self.lif2(self.conv2(spikes1), mem2)
            out = out + self.head(spikes2)
        return out / self.steps


def by_name(report: energy.CostReport) -> dict[str, energy.LayerCost]:
    return {layer.name: layer for layer in report.layers}


def test_macs_match_hand_counts_for_conv_and_linear() -> None:
    report = profile_model(ConvLinear(), (1, 1, 8, 8), **FAST)
    layers = by_name(report)
    assert layers["conv"].macs == 8 * 8 * 4 * 9  # outputs x (in_channels x kernel)
    assert layers["fc"].macs == 256 * 10
    assert report.macs == 8 * 8 * 4 * 9 + 256 * 10
    assert report.params == sum(p.numel() for p in ConvLinear().parameters())


def test_transposed_conv_counts_every_input_times_its_kernel() -> None:
    report = profile_model(ConvUp(), (1, 1, 8, 8), **FAST)
    # each of the 4 x 8 x 8 inputs is multiplied into 2 channels x 2 x 2 kernel taps
    assert by_name(report)["up"].macs == 4 * 8 * 8 * 2 * 2 * 2
    assert by_name(report)["up"].type == "ConvTranspose2d"


def test_batch_counts_every_image() -> None:
    single = profile_model(ConvLinear(), (1, 1, 8, 8), **FAST)
    batch = profile_model(ConvLinear(), (3, 1, 8, 8), **FAST)
    assert batch.macs == 3 * single.macs


@pytest.mark.parametrize("steps", [1, 3, 5])
def test_a_layer_called_t_times_is_counted_t_times(steps: int) -> None:
    report = profile_model(Repeated(steps), (1, 1, 8, 8), **FAST)
    layer = by_name(report)["conv"]
    assert layer.calls == steps
    assert layer.macs == steps * 8 * 8 * 4 * 9


def test_dense_network_energy_is_mac_energy() -> None:
    report = profile_model(ConvUp(), (1, 1, 8, 8), **FAST)
    assert report.sops == 0 and report.dense_macs == report.macs
    assert report.energy_pj == pytest.approx(4.6 * report.macs)
    assert report.energy_uj == pytest.approx(4.6e-6 * report.macs)
    assert all(not layer.spiking and layer.input_spike_rate is None for layer in report.layers)


def test_sops_follow_a_known_spike_pattern() -> None:
    report = profile_model(KnownSpikes((0.25,)), (1, 1, 8, 8), **FAST)
    dense, spiking = by_name(report)["conv1"], by_name(report)["conv2"]
    macs = 8 * 8 * 2 * 4 * 9
    assert spiking.spiking and spiking.macs == macs and spiking.dense_macs == 0
    assert spiking.input_spike_rate == pytest.approx(0.25)
    assert spiking.sops == pytest.approx(0.25 * macs)
    assert spiking.energy_pj == pytest.approx(0.9 * 0.25 * macs)
    # the analog image makes the first layer dense: the direct-encoding convention
    assert not dense.spiking and dense.input_spike_rate is None
    assert dense.energy_pj == pytest.approx(4.6 * 8 * 8 * 4 * 9)
    assert report.energy_pj == pytest.approx(dense.energy_pj + spiking.energy_pj)
    assert report.layers[0].name == "conv1"  # rows in call order


def test_sops_sum_over_time_steps_with_different_rates() -> None:
    report = profile_model(KnownSpikes((0.25, 0.5, 0.0)), (1, 1, 8, 8), **FAST)
    layer = by_name(report)["conv2"]
    step_macs = 8 * 8 * 2 * 4 * 9
    assert layer.calls == 3 and layer.macs == 3 * step_macs
    assert layer.sops == pytest.approx(step_macs * (0.25 + 0.5 + 0.0))  # MACs per step x mean rate x T
    assert layer.input_spike_rate == pytest.approx(0.25)
    assert layer.spiking  # a silent step (all zeros) is still spikes


def test_spiking_false_counts_spikes_as_dense() -> None:
    report = profile_model(KnownSpikes((0.25,)), (1, 1, 8, 8), spiking=False, **FAST)
    assert report.sops == 0 and not report.spiking
    assert report.energy_pj == pytest.approx(4.6 * report.macs)


def test_energy_constants_can_be_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (energy.E_MAC_PJ, energy.E_AC_PJ) == (4.6, 0.9)
    model = KnownSpikes((0.25,))
    report = profile_model(model, (1, 1, 8, 8), e_mac_pj=2.0, e_ac_pj=0.5, **FAST)
    layers = by_name(report)
    assert layers["conv1"].energy_pj == pytest.approx(2.0 * layers["conv1"].macs)
    assert layers["conv2"].energy_pj == pytest.approx(0.5 * layers["conv2"].sops)
    monkeypatch.setattr(energy, "E_MAC_PJ", 1.0)
    monkeypatch.setattr(energy, "E_AC_PJ", 0.1)
    patched = profile_model(model, (1, 1, 8, 8), **FAST)  # module constants read at call time
    assert patched.energy_pj == pytest.approx(1.0 * layers["conv1"].macs + 0.1 * layers["conv2"].sops)
    assert (patched.e_mac_pj, patched.e_ac_pj) == (1.0, 0.1)


@pytest.mark.parametrize(
    ("build", "shape"),
    [
        (ConvLinear, (1, 1, 8, 8)),
        (ConvUp, (2, 1, 8, 8)),
        (lambda: create_model("unet", width=4, in_channels=2), (1, 2, 64, 48)),
    ],
)
def test_macs_agree_with_torch_flop_counter(build, shape: tuple[int, ...]) -> None:
    model = build().eval()
    x = phantom_sample(shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    report = profile_model(model, sample=x, **FAST)
    assert counter.get_total_flops() == 2 * report.macs  # FLOPs = 2 x MACs for conv and linear
    assert FUNCTIONAL_ROW not in by_name(report)


def test_functional_matmuls_are_not_left_out() -> None:
    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(8, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, 16, 8) as 16 tokens of 8
            tokens = self.proj(x[:, 0])
            return torch.softmax(tokens @ tokens.transpose(1, 2), -1) @ tokens

    report = profile_model(Attention(), sample=torch.rand(1, 1, 16, 8), **FAST)
    functional = by_name(report)[FUNCTIONAL_ROW]
    assert functional.macs == 16 * 16 * 8 + 16 * 8 * 16  # q k^T and attention x v
    assert by_name(report)["proj"].macs == 16 * 8 * 8
    assert report.macs == functional.macs + 16 * 8 * 8


def test_latency_is_positive_and_the_median_of_the_runs() -> None:
    report = profile_model(ConvUp(), (1, 1, 16, 16), repeats=3, threads=1)
    assert len(report.latency_runs_ms) == 3 and all(t > 0 for t in report.latency_runs_ms)
    assert report.latency_ms == statistics.median(report.latency_runs_ms)
    assert report.latency_min_ms <= report.latency_ms <= report.latency_max_ms
    assert report.threads == 1


def test_profiling_leaves_the_model_untouched() -> None:
    model = TinySNN().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    threads = torch.get_num_threads()
    profile_model(model, (1, 1, 16, 16), repeats=1, threads=1)
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.get_num_threads() == threads


def test_snntorch_network_spiking_layers_count_sops() -> None:
    torch.manual_seed(0)
    report = profile_model(TinySNN(steps=4), (1, 1, 32, 32), **FAST)
    layers = by_name(report)
    assert [layer.name for layer in report.layers] == ["conv1", "conv2", "head"]
    assert not layers["conv1"].spiking and layers["conv1"].calls == 4
    assert layers["conv2"].spiking and layers["head"].spiking
    assert 0 < layers["conv2"].input_spike_rate < 1
    assert layers["conv2"].sops == pytest.approx(layers["conv2"].macs * layers["conv2"].input_spike_rate)
    assert report.spiking and report.energy_pj < 4.6 * report.macs


def test_phantom_is_a_normalised_head_not_noise() -> None:
    image = phantom_sample((2, 2, 64, 64), modalities=["t1c", "flair"])
    assert image.shape == (2, 2, 64, 64) and image.dtype == torch.float32
    assert image.min() == 0 and image.max() == 1
    assert (image[0, 0, 0] == 0).all()  # background corner
    assert (image[0, 0, 32, 16:48] > 0).all()  # tissue in the middle
    assert not torch.equal(image[0, 0], image[0, 1])  # contrasts differ
    assert phantom_sample((1, 1, 4, 16, 16)).shape == (1, 1, 4, 16, 16)
    with pytest.raises(ValueError, match="sample="):
        phantom_sample((1, 16))


def test_unet_lite_profiles_by_registry_name() -> None:
    report = profile("unet", size=64, repeats=1, threads=1)
    spec = get_spec("unet")
    net = create_model("unet", in_channels=1, **spec.lite_config)
    assert report.params == sum(p.numel() for p in net.parameters())
    assert report.config == "lite" and report.input_shape == (1, 1, 64, 64) and not report.spiking
    assert report.energy_pj == pytest.approx(4.6 * report.macs) and report.sops == 0
    assert report.latency_ms > 0
    # first conv: 64 x 64 outputs x 16 channels x (1 x 9)
    assert report.layers[0].macs == 64 * 64 * 16 * 9
    json.dumps(report.to_dict(), allow_nan=False)
    table = format_table(report, top=5)
    assert "decoders" in table and "pJ/MAC" in table and "uJ" in table


def test_paper_config_and_weights_ids() -> None:
    lite = profile("unet", size=32, **FAST)
    paper = profile("unet", size=32, config="paper", **FAST)
    assert paper.config == "paper" and paper.macs == pytest.approx(16 * lite.macs, rel=0.01)  # width x4
    trained = profile("unet.figshare", size=32, **FAST)
    assert trained.model == "unet.figshare" and trained.config == "weights"
    assert trained.input_shape[1] == 1
    with pytest.raises(ValueError, match="config"):
        profile("unet.figshare", size=32, config="paper", **FAST)
    with pytest.raises(KeyError, match="unet"):
        profile("no_such_model", size=32, **FAST)


def test_profile_accepts_a_module_and_a_real_sample() -> None:
    sample = phantom_sample((1, 1, 16, 16))
    report = profile(ConvUp(), sample=sample, **FAST)
    assert report.sample == "user sample" and report.input_shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="differs"):
        profile_model(ConvUp(), (1, 1, 8, 8), sample=sample, **FAST)


@pytest.mark.parametrize("name", list_models())
def test_every_registry_model_is_fully_counted(name: str) -> None:
    report = profile(name, size=64, **FAST)
    x = phantom_sample(report.input_shape)
    model = create_model(name, in_channels=report.input_shape[1], **get_spec(name).lite_config).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    hooked = sum(layer.macs for layer in report.layers if layer.name != FUNCTIONAL_ROW)
    # Layers never count more than torch does, and what they miss (attention matmuls, F.conv2d in
    # custom blocks) appears in the functional row. The op census also counts what torch's counter
    # has no formula for (torch.cdist of the pixel classifier's neighbour search), never less.
    assert 2 * hooked <= counter.get_total_flops() <= 2 * report.macs
    if name != "pixel_classifier":
        assert counter.get_total_flops() == 2 * report.macs
    assert report.spiking == get_spec(name).spiking or report.macs == 0
    json.dumps(report.to_dict(), allow_nan=False)


def calibrated(name: str, sample: torch.Tensor) -> nn.Module:
    """Lite ``name`` whose batch-norm statistics are those of ``sample``.

    A freshly initialised spiking network in eval mode normalises with unit running statistics and
    barely fires; one training-mode pass with cumulative statistics (``momentum=None``) makes the
    currents reach threshold as they do in a trained network, so the spiking layers have spikes to count.
    """
    torch.manual_seed(0)
    net = create_model(name, in_channels=sample.shape[1], **get_spec(name).lite_config)
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(sample)
    return net.eval()


@pytest.mark.parametrize("name", SPIKING_MODELS)
def test_registry_spiking_models_profile_by_name(name: str) -> None:
    report = profile(name, size=64, **FAST)
    assert report.time_steps and report.time_steps >= 1
    assert not report.layers[0].spiking, "the first layer receives the analog image (direct encoding) and is dense"
    assert report.energy_pj <= 4.6 * report.macs
    assert "untrained" in format_table(report)


@pytest.mark.parametrize("name", SPIKING_MODELS)
def test_registry_spiking_models_count_synaptic_operations(name: str) -> None:
    sample = phantom_sample((1, 1, 64, 64))
    report = profile_model(calibrated(name, sample), sample=sample, spiking=True, **FAST)
    assert report.sops > 0, "a firing spiking model should report synaptic operations"
    assert not report.layers[0].spiking, "the first layer receives the analog image (direct encoding) and is dense"
    assert all(0 < layer.input_spike_rate < 1 for layer in report.spiking_layers if layer.type.startswith("Conv"))
    past_first = [layer for layer in report.layers[1:] if layer.type.startswith("Conv")]
    spiking_share = sum(layer.macs for layer in past_first if layer.spiking) / sum(layer.macs for layer in past_first)
    # most of a spiking network's work past the encoder layer is driven by spikes
    assert spiking_share > 0.5, f"{name}: only {spiking_share:.0%} of the conv MACs past the first layer see spikes"
    for layer in report.layers:
        assert layer.energy_pj == pytest.approx(4.6 * layer.dense_macs + 0.9 * layer.sops)
    # an accumulate costs less than a multiply-accumulate, so spikes must save energy over the ANN count
    assert 0 < report.energy_uj < report.ann_energy_uj


def test_spiking_resnet_layers_fed_by_neurons_are_spiking_and_current_paths_dense() -> None:
    """In the spiking ResNets, the block convolutions follow a LIF (spikes), while the shortcut
    convolutions carry membrane currents (MS-ResNet) and the attention maps are analog."""
    module = pytest.importorskip("seg_core.models.spiking_resnet")
    sample = phantom_sample((1, 1, 64, 64))
    for name in [n for n in SPIKING_MODELS if get_spec(n).family == "spiking_resnet"]:
        net = calibrated(name, sample)
        layers = by_name(profile_model(net, sample=sample, spiking=True, **FAST))
        blocks = [(prefix, block) for prefix, block in net.named_modules() if isinstance(block, module.SpikingBasicBlock)]
        assert blocks
        for prefix, block in blocks:
            assert layers[f"{prefix}.conv1"].spiking and layers[f"{prefix}.conv2"].spiking, prefix
            if block.shortcut is not None:
                shortcut_convs = [n for n, m in block.shortcut.named_modules() if isinstance(m, nn.Conv2d)]
                assert all(not layers[f"{prefix}.shortcut.{n}"].spiking for n in shortcut_convs), prefix
            assert not layers[f"{prefix}.attention.spatial.conv"].spiking, prefix


def test_cli_energy_prints_json_and_a_table() -> None:
    command = [sys.executable, "-m", "seg_core", "energy", "--model", "unet", "--size", "64", "--repeats", "1", "--threads", "1"]
    result = subprocess.run([*command, "--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == "unet" and report["macs"] > 0 and report["latency_ms"] > 0
    assert report["energy_uj"] == pytest.approx(4.6e-6 * report["macs"])
    table = subprocess.run([*command, "--top", "3"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and "(3 of 23 layers shown, by energy)" in table.stdout
    unknown = subprocess.run([*command[:5], "nope"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "unknown model" in unknown.stderr


# --- every op counted or listed (seg_core.energy.op_census) --------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_every_op_of_every_architecture_has_a_cost_rule(name: str) -> None:
    report = profile(name, size=64, repeats=0, threads=1)
    assert report.unclassified_ops == [], f"{name} runs ops with no cost rule: {report.unclassified_ops}"
    assert report.uncounted_ops, "element-wise ops are listed, not hidden"
    assert sum(op["output_elements"] for op in report.uncounted_ops) > 0


def test_an_op_without_a_rule_is_reported_not_counted_as_zero() -> None:
    class Spectral(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft2(x).abs()[..., : x.shape[-1]]

    report = profile_model(Spectral(), (1, 1, 8, 8), repeats=0)
    assert any("fft" in op for op in report.unclassified_ops)


def test_cdist_is_counted_by_hand() -> None:
    from seg_core.energy.op_census import OpCensus
    from seg_core.models.baselines import knn_probability

    pixels, references, features = 50, 7, 5
    with torch.no_grad(), OpCensus() as census:
        knn_probability(torch.rand(pixels, features), torch.rand(references, features), torch.rand(references), k=3)
    # One multiply-accumulate per feature of each pixel-reference pair.
    assert census.macs == pixels * references * features


def test_pixel_classifier_energy_includes_its_neighbour_search() -> None:
    from seg_core.models import create_model, get_spec

    config = {**get_spec("pixel_classifier").lite_config, "n_reference": 40, "n_samples": 400}
    model = create_model("pixel_classifier", **config)
    rng = np.random.default_rng(0)
    images = rng.random((4, 1, 16, 16)).astype(np.float16)
    masks = (rng.random((4, 1, 16, 16)) > 0.7).astype(np.uint8)
    model.fit(images, masks)
    size, features = int(model.knn_size), model.knn_bank.shape[1]
    report = profile_model(model, (1, 1, 16, 16), repeats=0, spiking=False)
    # By hand: the k-NN member compares each of the 256 pixels with every reference row over every
    # feature, and the ridge member takes one dot product per pixel.
    by_hand = 16 * 16 * size * features + 16 * 16 * features
    assert report.macs >= by_hand and report.unclassified_ops == []
    assert report.energy_pj >= by_hand * report.e_mac_pj


def test_attention_block_costs_are_counted_by_hand() -> None:
    from seg_core.models.blocks.spiking import ChannelAttention, SpatialAttention

    channels, ratio, height, width, kernel = 16, 8, 12, 10, 3

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.channel, self.spatial = ChannelAttention(channels, ratio), SpatialAttention(kernel)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x[None]  # (T = 1, B, C, H, W)
            x = x * self.channel(x)[None, :, :, None, None]
            return (x * self.spatial(x)[None, :, None])[0]

    report = profile_model(Block(), (1, channels, height, width), repeats=0, spiking=False)
    hidden = channels // ratio
    # The channel MLP (C -> C/r -> C) runs on the average- and on the max-pooled vector; the spatial
    # convolution maps 2 pooled maps to 1 with a k x k kernel at every position.
    expected = 2 * (channels * hidden + hidden * channels) + height * width * 2 * kernel * kernel
    assert report.macs == expected
    listed = {op["op"] for op in report.uncounted_ops}
    assert {"aten.mean.dim", "aten.amax.default", "aten.sigmoid.default"} <= listed
