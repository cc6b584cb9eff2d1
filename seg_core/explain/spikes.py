"""Spiking activity of the spiking ResNets, per block and time step.

The temporal / channel / spatial attention weights, spike-rate maps (fraction of a block's channels
firing at each position) and a raster of sampled neurons, from :func:`seg_core.spiking.record`. The
attention of these blocks multiplies the block's current by ``temporal[t] * channel[c] *
spatial[h, w]`` (:class:`~seg_core.models.blocks.spiking.SpikingAttention`), so the spatial
weighting applied at step ``t`` is ``temporal[t] * spatial``: channel and spatial attention are
shared by all steps by design, only temporal attention and the spikes vary over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.explain.inputs import check_input

__all__ = ["SPIKING_CAPTIONS", "BlockActivity", "SpikeRaster", "SpikingExplanation", "explain_spiking", "is_spiking"]

#: Captions for the spiking views, for an educator to teach from.
SPIKING_CAPTIONS: dict[str, str] = {
    "spike_rate": "Spike rate: the share of this block's neurons (one per feature map) that fired at each "
    "position during the chosen time step. Bright = busy. Spiking networks are sparse: most neurons are "
    "silent most of the time, which is what makes them cheap on neuromorphic chips.",
    "spatial": "Spatial attention: how strongly the block lets each position through (0 = suppressed, "
    "1 = passed on). Computed from the block's own activity, so it highlights where the block 'looks'.",
    "temporal": "Temporal attention: how much each time step counts in this block. The scan is shown to the "
    "network once per time step; this weight scales the whole block's output at that step.",
    "channel": "Channel attention: how much each feature map (channel) counts in this block, the same "
    "for every time step and position. A few high bars mean the block relies on a few features.",
    "raster": "Spike raster: each row is one neuron picked at random (half inside the predicted tumor, "
    "half outside), each column a time step; a dot is a spike. Neurons either fire (1) or stay silent (0).",
    "step_attention": "The spatial weighting the block applies at this time step: temporal weight of the "
    "step times the spatial map (models without temporal attention use the same map at every step).",
}


def is_spiking(model: nn.Module) -> bool:
    """Whether ``model`` contains spiking neurons (LIF layers) that :func:`explain_spiking` can record."""
    from seg_core.spiking import lif_layers

    return bool(lif_layers(model))


@dataclass
class BlockActivity:
    """What one spiking block did, per time step.

    Attributes:
        name: block name (``"stages.1.0"``): stage 1, block 0.
        channels: feature maps of the block.
        size: ``(h, w)`` of its maps (a fraction of the input's size).
        temporal: weight per time step ``(T,)`` in (0, 1), or None (no temporal attention).
        channel: weight per channel ``(C,)`` in (0, 1), shared by all steps.
        spatial: weight per position ``(h, w)`` in (0, 1), shared by all steps.
        step_attention: spatial weighting applied at each step, ``temporal[t] * spatial``, ``(T, h, w)``.
        rate_maps: share of the block's channels firing at each position and step, ``(T, h, w)``
            (its second LIF layer, on the same grid as the attention).
        step_rates: share of the second LIF layer's neurons firing at each step, ``(T,)``.
        input_rate_maps: the same for the block's first LIF layer, which turns the block's input
            currents into spikes, ``(T, h_in, w_in)`` (twice the size for a stage's first block).
        input_step_rates: share of the first LIF layer's neurons firing at each step, ``(T,)``.
    """

    name: str
    channels: int
    size: tuple[int, int]
    temporal: np.ndarray | None
    channel: np.ndarray
    spatial: np.ndarray
    step_attention: np.ndarray
    rate_maps: np.ndarray
    step_rates: np.ndarray
    input_rate_maps: np.ndarray | None = None
    input_step_rates: np.ndarray | None = None

    @property
    def label(self) -> str:
        parts = self.name.split(".")
        if len(parts) == 3 and parts[0] == "stages":
            return f"stage {int(parts[1]) + 1}, block {int(parts[2]) + 1}"
        return self.name


@dataclass
class SpikeRaster:
    """Spikes of sampled neurons over the time steps.

    Attributes:
        labels: one per neuron, ``"stage 2, block 1 · ch 5 @ (3, 4)"``.
        layers: the LIF layer of each neuron.
        spikes: ``(N, T)`` bool.
        in_tumor: ``(N,)`` bool: the neuron's position lies in the explained region.
    """

    labels: list[str]
    layers: list[str]
    spikes: np.ndarray
    in_tumor: np.ndarray

    @property
    def fired_fraction(self) -> float:
        """Share of the sampled neurons that fired at least once."""
        return float(self.spikes.any(axis=1).mean()) if len(self.spikes) else 0.0


@dataclass
class SpikingExplanation:
    """Spiking activity of one forward pass.

    Attributes:
        time_steps: ``T``.
        blocks: per attention block, in forward order.
        layer_rates: per LIF layer, the share of neurons firing at each step, ``(T,)``.
        raster: sampled neurons.
        input_size: ``(H, W)`` the model worked at (before padding).
    """

    time_steps: int
    blocks: list[BlockActivity]
    layer_rates: dict[str, np.ndarray]
    raster: SpikeRaster
    input_size: tuple[int, int]
    captions: dict[str, str] = field(default_factory=lambda: dict(SPIKING_CAPTIONS))

    @property
    def mean_rate(self) -> float:
        """Share of all recorded neurons' (layer-averaged) firing over all steps."""
        if not self.layer_rates:
            return 0.0
        return float(np.mean([rates.mean() for rates in self.layer_rates.values()]))

    def rate_matrix(self) -> np.ndarray:
        """Blocks x time steps firing rates, ``(len(blocks), T)``: a heatmap of activity over depth and time."""
        return np.stack([block.step_rates for block in self.blocks]) if self.blocks else np.zeros((0, self.time_steps))


def _crop(array: torch.Tensor, size: tuple[int, int], padded: tuple[int, int]) -> torch.Tensor:
    """Crop a map at a fraction of the padded input to the part covering the real input."""
    h = max(1, int(np.ceil(array.shape[-2] * size[0] / padded[0])))
    w = max(1, int(np.ceil(array.shape[-1] * size[1] / padded[1])))
    return array[..., :h, :w]


def explain_spiking(
    model: nn.Module, x: torch.Tensor, region: torch.Tensor | None = None, *, neurons: int = 48, seed: int = 0
) -> SpikingExplanation:
    """Record a spiking model's spikes and attention on ``x`` and summarise them per block and step.

    Args:
        model: a spiking network of the zoo (contains LIF layers and spiking attention blocks).
        x: one normalised input ``(1, C, H, W)``.
        region: the explained region ``(H, W)``; half of the raster's neurons are sampled inside it.
        neurons: neurons in the raster, spread over the two LIF layers of the last block of each stage.
        seed: sampling seed.

    Raises:
        ValueError: when ``model`` has no spiking neurons.
    """
    from seg_core.spiking import record

    check_input(x)
    if not is_spiking(model):
        raise ValueError("this model has no spiking neurons; spiking explanations need attention_snn, csa_snn or tcsa_snn")
    height, width = x.shape[-2:]
    multiple = int(getattr(model, "input_multiple", 1) or 1)
    padded = (height + (-height) % multiple, width + (-width) % multiple)
    with torch.inference_mode(), record(model, store="binary") as recording:
        model(x.detach().float())
    spikes = recording.spikes
    steps = next(iter(spikes.values())).shape[0] if spikes else 1

    blocks = []
    for attention_name, maps in recording.attention.items():
        block = attention_name.rsplit(".", 1)[0]
        spatial = _crop(maps["spatial"][0].float(), (height, width), padded)
        temporal = maps["temporal"][0].float() if "temporal" in maps else None
        weights = temporal if temporal is not None else torch.ones(steps)
        rate_maps, step_rates = _rates(spikes.get(f"{block}.lif2"), (height, width), padded, steps, tuple(spatial.shape))
        input_rate_maps, input_step_rates = _rates(spikes.get(f"{block}.lif1"), (height, width), padded, steps, None)
        blocks.append(
            BlockActivity(
                name=block,
                channels=int(maps["channel"].shape[1]),
                size=(int(spatial.shape[0]), int(spatial.shape[1])),
                temporal=None if temporal is None else temporal.numpy(),
                channel=maps["channel"][0].float().numpy(),
                spatial=spatial.numpy(),
                step_attention=(weights[:, None, None] * spatial[None]).numpy(),
                rate_maps=rate_maps.numpy(),
                step_rates=step_rates.numpy(),
                input_rate_maps=None if input_rate_maps is None else input_rate_maps.numpy(),
                input_step_rates=None if input_step_rates is None else input_step_rates.numpy(),
            )
        )
    layer_rates = {name: s[:, 0].float().mean(dim=tuple(range(1, s.ndim - 1))).numpy() for name, s in spikes.items()}
    raster = _sample_raster(spikes, blocks, region, (height, width), padded, neurons, seed)
    return SpikingExplanation(steps, blocks, layer_rates, raster, (height, width))


def _rates(
    layer_spikes: torch.Tensor | None,
    size: tuple[int, int],
    padded: tuple[int, int],
    steps: int,
    empty_shape: tuple[int, ...] | None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-step rate maps ``(T, h, w)`` (mean over channels) and rates ``(T,)`` of one LIF layer's spikes."""
    if layer_spikes is None:
        if empty_shape is None:
            return None, None
        return torch.zeros(steps, *empty_shape), torch.zeros(steps)
    maps = _crop(layer_spikes[:, 0].float(), size, padded)  # (T, C, h, w)
    return maps.mean(dim=1), maps.mean(dim=(1, 2, 3))


def _sample_raster(
    spikes: dict[str, torch.Tensor],
    blocks: list[BlockActivity],
    region: torch.Tensor | None,
    size: tuple[int, int],
    padded: tuple[int, int],
    neurons: int,
    seed: int,
) -> SpikeRaster:
    # The last block of each stage: one view per depth of the network.
    last_of_stage: dict[str, BlockActivity] = {}
    for block in blocks:
        last_of_stage[block.name.rsplit(".", 1)[0]] = block
    chosen = [
        (block, f"{block.name}.{lif}")
        for block in last_of_stage.values()
        for lif in ("lif1", "lif2")
        if f"{block.name}.{lif}" in spikes
    ]
    rng = np.random.default_rng(seed)
    labels: list[str] = []
    layers: list[str] = []
    rows: list[np.ndarray] = []
    inside: list[bool] = []
    if not chosen or neurons <= 0:
        return SpikeRaster([], [], np.zeros((0, 1), dtype=bool), np.zeros(0, dtype=bool))
    per_layer = max(1, neurons // len(chosen))
    for block, layer in chosen:
        layer_spikes = _crop(spikes[layer][:, 0], size, padded).numpy()  # (T, C, h, w)
        _, channels, h, w = layer_spikes.shape
        if region is not None and region.any():
            # A position is "in the tumor" when at least half of the pixels it covers are.
            small = (F.interpolate(region[None, None].float(), size=(h, w), mode="area")[0, 0] >= 0.5).numpy()
        else:
            small = np.zeros((h, w), dtype=bool)
        positions_in, positions_out = np.argwhere(small), np.argwhere(~small)
        want_in = per_layer // 2 if len(positions_in) and len(positions_out) else (per_layer if len(positions_in) else 0)
        where = "input" if layer.endswith("lif1") else "inner"
        for positions, count, flag in ((positions_in, want_in, True), (positions_out, per_layer - want_in, False)):
            for _ in range(count):
                row, col = positions[rng.integers(len(positions))]
                channel = int(rng.integers(channels))
                rows.append(layer_spikes[:, channel, row, col].astype(bool))
                labels.append(f"{block.label}, {where} · ch {channel} @ ({row}, {col})")
                layers.append(layer)
                inside.append(flag)
    return SpikeRaster(labels, layers, np.stack(rows), np.asarray(inside, dtype=bool))
