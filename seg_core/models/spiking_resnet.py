"""Spiking ResNet-34 segmentation networks with attention: AttentionSNN, CSA-SNN and TCSA-SNN.

References:
    * Spiking residual networks: Fang et al., "Deep Residual Learning in Spiking Neural Networks"
      (SEW ResNet), NeurIPS 2021; the blocks here are pre-activation blocks whose shortcut carries
      membrane currents rather than spikes, as in Hu et al., "Advancing Spiking Neural Networks
      towards Deep Residual Learning" (MS-ResNet), arXiv:2112.08954, 2021.
    * Temporal attention: Yao et al., "Temporal-wise Attention Spiking Neural Networks for Event
      Streams Classification", ICCV 2021.
    * Temporal-channel-spatial attention (TCSA, CSA): Yao et al., "Attention Spiking Neural
      Networks", IEEE TPAMI 45(8), 2023.
    * Channel and spatial attention: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018;
      Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.
    * Threshold-dependent batch-norm initialisation: Zheng et al., "Going Deeper With Directly-
      Trained Larger Spiking Neural Networks" (tdBN), AAAI 2021.
    * Seed projects: AttentionSNN, CSA_SNN and TCSA_SNN in
      github.com/shadynagy111-eng/Spiking-Visual-attention-for-Medical-image-segmentation.

Neurons are leaky integrate-and-fire (:class:`~seg_core.models.blocks.spiking.LIF`, snnTorch),
threshold :math:`U_{\\rm thr} = 0.5`, decay :math:`\\beta = 0.25`, reset to zero:

.. math::

    U[t] = \\beta\\,(1 - S[t-1])\\,U[t-1] + I[t], \\qquad S[t] = \\Theta(U[t] - U_{\\rm thr})

trained through a surrogate gradient (by default the seed's rectangular window, ``|U - U_thr| < 0.5``).

Architecture (``width`` = 64 is the paper size):

* **Direct encoding.** The image is the input current at every one of ``T`` time steps; the stem
  (7x7 convolution, stride 2, batch norm, no neuron) therefore runs once and is repeated over time.
* **Encoder.** ResNet-34: 3, 4, 6, 3 basic blocks at ``width * (1, 2, 4, 8)`` channels, each stage
  halving the resolution (the stem and four stages: 32x in all, hence ``input_multiple = 32``).
  A block is ``LIF -> conv3x3 -> BN -> LIF -> conv3x3 -> BN -> attention`` plus a shortcut
  (2x2 average pooling, 1x1 convolution and BN where the shape changes). Attention is applied to the
  second BN's output: channel then 3x3 spatial attention (CSA), preceded by temporal attention over
  the ``T`` steps in TCSA. A last LIF turns the deepest currents into spikes.
* **Decoder.** ``"transposed"`` (CSA-SNN, TCSA-SNN): five 2x2 stride-2 transposed convolutions with
  ReLU, ``8w -> 4w -> 2w -> w -> w/2 -> w/4`` channels (512-256-128-64-32-16 at paper size; never
  fewer than 16), then a 1x1 convolution. ``"spiking_upsample"`` (AttentionSNN): five
  ``conv3x3 -> BN -> bilinear x2 -> LIF`` stages over the same channels, then a 1x1 convolution and
  BN. Both run on every time step; the logits are the mean over ``T`` of the (non-spiking) head.
* **Skip connections** (``skip_connections=True``, the registered default; not in the seed): the
  decoder adds the encoder's currents at every scale, LinkNet style: stage outputs at 1/16, 1/8 and
  1/4 (same channels, no parameters), the stem at 1/2 (1x1 projection + BN) and the image itself at
  full resolution (1x1 convolution + BN). In the spiking decoder they enter as input current of the
  decoder's neurons, so its convolutions still see only spikes.

Design notes:

* Batch norm is a plain ``BatchNorm2d`` over the ``T * B`` images of a batch: the same statistics
  as the seed's ``BatchNorm3d`` over ``(B, C, T, H, W)``. Following tdBN (and the seed), the scale of
  a batch norm feeding neurons starts at the threshold, ``0.2 x`` threshold for the one feeding the
  residual sum so a deep stack starts close to its shortcut path; unit scale where no neuron follows
  (the logits, the skips into the conventional decoder).
* Membranes live in local variables of one forward pass, so nothing persists on the modules between
  calls and one cached model may run in several threads at once (no lock needed; eval mode, since
  training updates batch-norm running statistics).
* Why the skips: without them every output pixel is decoded from the 1/32-resolution spikes alone
  (a 2x2 code for a 64x64 slice), so the network cannot place a boundary more finely than a 32-pixel
  block, and in the zoo's sanity test (8 Adam steps on a pixel-wise target) the seed's networks
  reduce the loss by only 5-30 %, against 40-60 % with the skips. ``skip_connections=False``
  builds the seed's networks exactly.
* Other deviations from the seed: for ``T > 1`` the seed averages the encoder's spikes over time
  before a single decoder pass, while here the decoder runs on every time step and the logits are
  averaged (identical for ``T = 1``), so all spiking layers see spikes; the decoder keeps at least
  16 channels (changes nothing at paper size); the logits' batch norm starts at unit scale.
* Published parameter counts: the seed READMEs list 23,483,986 / 22,610,529 / 22,982,497; these
  count each attention MLP twice (it is called on the average- and the max-pooled vector), so the
  seed's networks have 23,169,618 / 22,296,161 / 22,482,145 parameters, exactly what
  ``skip_connections=False`` builds. The seed's TCSA block uses a channel reduction of 5 (its CSA
  blocks use 8); kept here.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("csa_snn", width=16, in_channels=1).eval()
    >>> net(torch.zeros(2, 1, 96, 96)).shape
    torch.Size([2, 1, 96, 96])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.conv import SegmentationNet
from seg_core.models.blocks.encoders import resnet_stages
from seg_core.models.blocks.spiking import LIF, SpikingAttention, time_distributed

__all__ = ["SpikingResNet", "attention_snn", "csa_snn", "tcsa_snn"]

RESNET34_BLOCKS = (3, 4, 6, 3)
DECODERS = ("transposed", "spiking_upsample")
ATTENTIONS = ("csa", "tcsa")


def _batch_norm(channels: int, scale: float) -> nn.BatchNorm2d:
    # tdBN-style initialisation: normalised pre-activations start at `scale` (a fraction of the
    # threshold) rather than 1, which keeps early firing rates moderate in a deep spiking stack.
    norm = nn.BatchNorm2d(channels)
    nn.init.constant_(norm.weight, scale)
    return norm


class SpikingBasicBlock(nn.Module):
    """Pre-activation spiking basic block with attention on the residual branch.

    ``x -> LIF -> conv3x3(stride) -> BN -> LIF -> conv3x3 -> BN -> attention``, added to the
    shortcut of ``x`` (identity, or 2x2 average pooling + 1x1 conv + BN where the shape changes).
    The block's input and output are currents, not spikes (membrane shortcut).

    Shapes: ``(T, B, C_in, H, W)`` -> ``(T, B, C_out, H / stride, W / stride)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, attention: dict, neuron: dict, dilation: int = 1
    ) -> None:
        super().__init__()
        threshold = neuron["threshold"]
        self.lif1 = LIF(**neuron)
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn1 = _batch_norm(out_channels, threshold)
        self.lif2 = LIF(**neuron)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _batch_norm(out_channels, 0.2 * threshold)
        self.attention = SpikingAttention(out_channels, **attention)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            # Average pooling before the 1x1 convolution, rather than a strided 1x1 convolution,
            # so the shortcut uses every input position (as in the seed).
            pool = [nn.AvgPool2d(stride)] if stride != 1 else []
            self.shortcut = nn.Sequential(
                *pool, nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False), _batch_norm(out_channels, threshold)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = time_distributed(lambda images: self.bn1(self.conv1(images)), self.lif1.run(x))
        out = time_distributed(lambda images: self.bn2(self.conv2(images)), self.lif2.run(out))
        out = self.attention(out)
        shortcut = x if self.shortcut is None else time_distributed(self.shortcut, x)
        return out + shortcut


class SpikingUpsample(nn.Module):
    """``conv3x3 -> BN -> bilinear x2 (+ skip current) -> LIF``, a stage of the spiking decoder.

    Shapes: spikes ``(T, B, C_in, H, W)`` and an optional skip current broadcastable to
    ``(T, B, C_out, 2H, 2W)`` -> spikes ``(T, B, C_out, 2H, 2W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, neuron: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn = _batch_norm(out_channels, neuron["threshold"])
        self.lif = LIF(**neuron)

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        # Convolve at the low resolution, then upsample: 4x fewer MACs than the other way round.
        return F.interpolate(self.bn(self.conv(x)), scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, spikes: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        current = time_distributed(self._upsample, spikes)
        if skip is not None:
            # The skip enters as input current, so the decoder's convolutions still see only spikes.
            current = current + skip
        return self.lif.run(current)


def _decoder_channels(deepest: int, depth: int, min_channels: int) -> list[int]:
    # Decoder channels halve at every upsampling: 8w -> 4w -> 2w -> w -> w/2 -> w/4 for ResNet-34
    # (512 ... 16 at paper size). Levels matching an encoder stage keep its width (the skips add
    # to them); the last two, at 1/2 and full resolution, keep at least `min_channels` so narrow
    # models are as wide as the paper's there, where a handful of channels would leave the head
    # too little to work with.
    return [deepest] + [deepest // 2**k if k < depth else max(deepest // 2**k, min_channels) for k in range(1, depth + 2)]


def _build_decoder(kind: str, channels: list[int], out_channels: int, neuron: dict) -> tuple[nn.ModuleList, nn.Module]:
    """The decoder's upsampling stages over ``channels`` and its (non-spiking) head."""
    pairs = list(zip(channels[:-1], channels[1:], strict=True))
    if kind == "transposed":
        stages = nn.ModuleList(nn.ConvTranspose2d(cin, cout, kernel_size=2, stride=2) for cin, cout in pairs)
        return stages, nn.Conv2d(channels[-1], out_channels, kernel_size=1)
    stages = nn.ModuleList(SpikingUpsample(cin, cout, neuron) for cin, cout in pairs)
    # The seed's head ends in a batch norm; unit scale, since the logits feed no neuron.
    return stages, nn.Sequential(nn.Conv2d(channels[-1], out_channels, kernel_size=1, bias=False), _batch_norm(out_channels, 1.0))


def _build_skips(in_channels: int, width: int, channels: list[int], scale: float) -> tuple[nn.Module, nn.Module]:
    """The stem's skip (1/2 resolution) and the image's skip (full resolution) into the decoder.

    Stage outputs already have the decoder's channels at 1/16, 1/8 and 1/4; the stem is projected
    to the decoder's width at 1/2, and the image itself enters at full resolution, the only place
    where single-pixel detail survives (bilinear upsampling cannot recreate it): a 1x1
    convolution, i.e. the image as input current once more.
    """
    stem_skip = nn.Sequential(nn.Conv2d(width, channels[-2], kernel_size=1, bias=False), _batch_norm(channels[-2], scale))
    input_skip = nn.Sequential(nn.Conv2d(in_channels, channels[-1], kernel_size=1, bias=False), _batch_norm(channels[-1], scale))
    return stem_skip, input_skip


class SpikingResNet(SegmentationNet):
    """Spiking ResNet encoder with TCSA / CSA attention and an upsampling decoder (see module doc).

    Args:
        in_channels: number of input modalities.
        out_channels: number of output logits per pixel (1 for a binary tumor mask).
        width: channels of the first stage (64 in the paper); later stages double it. A multiple of 4.
        blocks: basic blocks per stage, ``(3, 4, 6, 3)`` for ResNet-34.
        attention: ``"csa"`` (channel + spatial) or ``"tcsa"`` (temporal + channel + spatial).
        decoder: ``"transposed"`` (ReLU transposed convolutions) or ``"spiking_upsample"``.
        time_steps: ``T``, the number of simulation steps the image is presented for. With temporal
            attention it also sets the size of that attention's MLP.
        channel_ratio: reduction of the channel attention MLP.
        temporal_ratio: reduction of the temporal attention MLP.
        threshold: LIF firing threshold.
        beta: LIF membrane decay per time step.
        surrogate: surrogate gradient name (``"rectangular"``, ``"fast_sigmoid"``, ``"sigmoid"``, ``"atan"``).
        slope: surrogate sharpness.
        skip_connections: add encoder features to the decoder at every scale (see the module doc);
            ``False`` builds the seed's network exactly.
        min_decoder_channels: the decoder's last two levels never narrow below this (16, the paper's last width).
    """

    #: Membranes live in the forward pass's local variables (see module doc), so one instance may run
    #: in several threads at once: :class:`~seg_core.inference.Segmenter` then skips its torch lock.
    reentrant_forward = True

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 64,
        blocks: Sequence[int] = RESNET34_BLOCKS,
        attention: str = "csa",
        decoder: str = "transposed",
        time_steps: int = 1,
        channel_ratio: int = 8,
        temporal_ratio: int = 4,
        threshold: float = 0.5,
        beta: float = 0.25,
        surrogate: str = "rectangular",
        slope: float = 1.0,
        skip_connections: bool = True,
        min_decoder_channels: int = 16,
    ) -> None:
        if attention not in ATTENTIONS:
            raise ValueError(f"unknown attention {attention!r}; choose one of: {', '.join(ATTENTIONS)}")
        if decoder not in DECODERS:
            raise ValueError(f"unknown decoder {decoder!r}; choose one of: {', '.join(DECODERS)}")
        if width < 4 or width % 4:
            raise ValueError(f"width must be a positive multiple of 4 (the decoder ends at width / 4), got {width}")
        if time_steps < 1:
            raise ValueError(f"time_steps must be at least 1, got {time_steps}")
        blocks = tuple(int(n) for n in blocks)
        # The stem and every stage halve the resolution; the decoder doubles it as many times.
        super().__init__(input_multiple=2 ** (len(blocks) + 1))
        self.time_steps = time_steps
        self.decoder_kind = decoder
        neuron = {"threshold": threshold, "beta": beta, "reset_mechanism": "zero", "surrogate": surrogate, "slope": slope}
        attention_config = {
            "time_steps": time_steps,
            "temporal": attention == "tcsa",
            "channel_ratio": channel_ratio,
            "temporal_ratio": temporal_ratio,
        }

        # The stem has no neuron: each block starts with one (pre-activation).
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False), _batch_norm(width, threshold)
        )
        block = partial(SpikingBasicBlock, attention=attention_config, neuron=neuron)
        widths = [width * 2**level for level in range(len(blocks))]
        self.stages = resnet_stages(block, width, widths, blocks, strides=[2] * len(blocks))
        self.output_lif = LIF(**neuron)
        channels = _decoder_channels(widths[-1], len(blocks), min_decoder_channels)
        self.decoder, self.head = _build_decoder(decoder, channels, out_channels, neuron)
        self.skip_connections = skip_connections
        if skip_connections:
            # Skips feeding spiking neurons get the threshold-scaled batch norm; those feeding the
            # conventional decoder the usual unit scale.
            scale = threshold if decoder == "spiking_upsample" else 1.0
            self.stem_skip, self.input_skip = _build_skips(in_channels, width, channels, scale)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        image = x
        # Direct encoding: the same current at every step, so the stem's output is computed once and
        # repeated (batch-norm statistics over T copies equal those over one).
        stem = self.stem(image)
        x = stem.unsqueeze(0).expand(self.time_steps, *stem.shape)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        y = self.output_lif.run(x)

        skips: list[torch.Tensor | None] = [None] * len(self.decoder)
        if self.skip_connections:
            # Deepest first, matching the decoder; time-invariant ones broadcast over T as (1, B, ...).
            skips = features[-2::-1] + [self.stem_skip(stem).unsqueeze(0), self.input_skip(image).unsqueeze(0)]
        for stage, skip in zip(self.decoder, skips, strict=True):
            if self.decoder_kind == "transposed":
                y = F.relu(time_distributed(stage, y))
                y = y if skip is None else y + skip
            else:
                y = stage(y, skip)
        # The head is not spiking: its outputs are logits, averaged over the time steps.
        return time_distributed(self.head, y).mean(dim=0)


_CITATION = "Yao et al. Attention Spiking Neural Networks. IEEE TPAMI 2023; Fang et al. Deep Residual Learning in Spiking Neural Networks. NeurIPS 2021."
_SPIKING_INTRO = (
    "A spiking neural network: its neurons add up their input over a few time steps and send "
    "all-or-nothing pulses (spikes) when a threshold is crossed, much like nerve cells, so most of "
    "them stay silent most of the time, which is what could make such networks cheap to run on "
    "neuromorphic chips. "
)


# AttentionSNN and CSA-SNN share this encoder; they differ in the decoder.
_CSA_ENCODER = (
    "This one reads the scan with a 34-layer residual network made of spiking neurons; in every block a "
    "channel attention step weighs which feature maps matter and a spatial attention step weighs where "
    "in the slice to look. "
)


# Only these settings are open to a config; each variant fixes its attention, decoder and channel
# ratio, so a config cannot turn a CSA-SNN into something else under the same name.
_OPEN_SETTINGS = ("in_channels", "out_channels", "width", "time_steps", "threshold", "beta", "surrogate", "slope")
_OPEN_SETTINGS += ("skip_connections", "temporal_ratio")


def _register_variant(spec: ModelSpec, attention: str, decoder: str, channel_ratio: int) -> Callable[..., SpikingResNet]:
    """Register ``spec`` as the :class:`SpikingResNet` with this attention, decoder and channel ratio."""

    def build(**config: Any) -> SpikingResNet:
        unknown = sorted(set(config) - set(_OPEN_SETTINGS))
        if unknown:
            raise TypeError(f"{spec.name} takes no setting {', '.join(unknown)}; it takes: {', '.join(_OPEN_SETTINGS)}")
        config.setdefault("time_steps", spec.time_steps)
        return SpikingResNet(**config, attention=attention, decoder=decoder, channel_ratio=channel_ratio)

    return register_model(spec)(build)


_CSA_SNN = ModelSpec(
    name="csa_snn",
    title="CSA-SNN (spiking ResNet-34, channel + spatial attention)",
    family="spiking_resnet",
    reference=_CITATION + " Seed project: CSA_SNN.",
    spiking=True,
    time_steps=1,
    input_multiple=32,
    description=_SPIKING_INTRO + _CSA_ENCODER + "A conventional decoder then enlarges the spikes of the deepest layer back to "
    "the slice size and gives a tumor score per pixel. It sees the slice for a single time step.",
    paper_config={"width": 64},
    lite_config={"width": 16},
    seed_parameters=22.6e6,
)
csa_snn = _register_variant(_CSA_SNN, attention="csa", decoder="transposed", channel_ratio=8)

# AttentionSNN: the encoder of CSA-SNN under a spiking decoder.
attention_snn = _register_variant(
    dataclasses.replace(
        _CSA_SNN,
        name="attention_snn",
        title="AttentionSNN (spiking ResNet-34)",
        reference=_CITATION + " Seed project: AttentionSNN.",
        description=_SPIKING_INTRO
        + _CSA_ENCODER
        + "Its decoder is spiking too: it enlarges the deepest feature maps back to the "
        "slice size with spiking layers, and only the last layer turns spike counts into a tumor score per "
        "pixel. It sees the slice for a single time step.",
        seed_parameters=23.48e6,
    ),
    attention="csa",
    decoder="spiking_upsample",
    channel_ratio=8,
)

# TCSA-SNN: temporal attention before CSA-SNN's, over four time steps.
tcsa_snn = _register_variant(
    dataclasses.replace(
        _CSA_SNN,
        name="tcsa_snn",
        title="TCSA-SNN (spiking ResNet-34, temporal + channel + spatial attention)",
        reference=_CITATION
        + " Yao et al. Temporal-wise Attention Spiking Neural Networks for Event Streams Classification. ICCV 2021. "
        "Seed project: TCSA_SNN.",
        time_steps=4,
        description=_SPIKING_INTRO
        + "This one shows the slice to a 34-layer residual network of spiking neurons four times in a row "
        "(four time steps). In every block, a temporal attention step first weighs how much each of the four "
        "steps counts, then channel attention weighs which feature maps matter and spatial attention weighs "
        "where in the slice to look. A conventional decoder enlarges the deepest spikes back to the slice "
        "size and the four steps' tumor scores are averaged per pixel.",
        # No reduction in the temporal MLP: with T = 4 the seed's ratio of 4 leaves one hidden ReLU, which
        # died in training (every temporal weight of the first tcsa_snn.figshare was sigmoid(0) = 0.5).
        paper_config={"width": 64, "temporal_ratio": 1},
        lite_config={"width": 16, "temporal_ratio": 1},
        seed_parameters=23.0e6,
    ),
    attention="tcsa",
    decoder="transposed",
    # The seed's TCSA block builds its channel attention with a reduction of 5 (its CSA blocks use 8).
    channel_ratio=5,
)
