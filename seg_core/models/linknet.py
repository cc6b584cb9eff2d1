"""LinkNet with attention-gated links (Chaurasia, Culurciello, "LinkNet: Exploiting Encoder Representations for Efficient Semantic Segmentation", VCIP 2017).

Encoder: a 7x7 stride-2 convolution and 3x3 stride-2 max pooling, then the four stages of
ResNet-18 (two residual BasicBlocks each) at ``width * (1, 2, 4, 8)`` channels, the last three
halving the size (output stride 32). Decoder: one block per stage, ``conv1x1 (in -> in/4) -> 3x3
transposed conv (x2) -> conv1x1 (in/4 -> out)``, each with BatchNorm and ReLU. As in LinkNet, the
input of every encoder stage is ADDED to the output of its decoder block (not concatenated, which
keeps the decoder light); here that link first passes through an additive attention gate (Oktay et
al. 2018) driven by the decoder block's input. A full-resolution head (3x3 transposed conv x2 ->
conv3x3 -> 2x2 transposed conv x2) gives one logit per pixel. ``width=64`` is the paper size (the
paper reports 11.5 M parameters; with the gates this is 11.7 M); ``width=24`` is the "lite" size
(about 1.6 M).

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("linknet_ag", width=24, in_channels=1)
    >>> net.input_multiple  # output stride 32: other sizes are padded up, and the logits cropped back
    32
    >>> net(torch.zeros(1, 1, 100, 116)).shape
    torch.Size([1, 1, 100, 116])
"""

from __future__ import annotations

import torch
import torch.nn as nn

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.attention import make_skip_attention
from seg_core.models.blocks.conv import SegmentationNet, conv_bn_relu, resnet_stem
from seg_core.models.blocks.encoders import BasicBlock, resnet_stages

# Kept importable from here, where LinkNet's BasicBlock used to live.
__all__ = ["LinkNetAG", "LinkNetDecoderBlock", "BasicBlock"]


class LinkNetDecoderBlock(nn.Sequential):
    """LinkNet decoder block: ``conv1x1 (m -> m/4) -> 3x3 transposed conv (stride) -> conv1x1 (m/4 -> n)``.

    Squeezing to a quarter of the channels before the transposed convolution is what makes the
    LinkNet decoder cheap (about 3% of the parameters).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        squeezed = max(in_channels // 4, 1)
        super().__init__(
            *conv_bn_relu(in_channels, squeezed, kernel_size=1),
            *conv_bn_relu(squeezed, squeezed, stride=stride, transposed=True),
            *conv_bn_relu(squeezed, out_channels, kernel_size=1),
        )


class LinkNetAG(SegmentationNet):
    """LinkNet (ResNet-18 encoder) whose encoder-to-decoder links pass through attention gates.

    Args:
        in_channels: input modalities of the ResNet stem.
        out_channels: logits per pixel of the full-resolution head.
        width: channels of the stem and first stage; later stages double it (64 in the paper).
        blocks_per_stage: BasicBlocks per encoder stage (2, as in ResNet-18).
    """

    # The attention on every link, by name (blocks.attention.make_skip_attention), driven by the
    # decoder block's input; a class attribute so the registered config stays that of the paper.
    skip_attention = "gate"

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 64, blocks_per_stage: int = 2) -> None:
        super().__init__(input_multiple=32)
        channels = [width * 2**level for level in range(4)]
        self.stem = resnet_stem(in_channels, width)
        # ResNet-18: the stem's max pooling already halved the input of the first stage.
        self.encoders = resnet_stages(BasicBlock, width, channels, [blocks_per_stage] * 4, strides=(1, 2, 2, 2))
        # Decoder level l undoes encoder stage l: its output has the shape of that stage's input,
        # to which the gated input is added. Stage 0 kept the size, so decoder 0 does not upsample.
        inputs = [width, *channels[:-1]]
        self.decoders = nn.ModuleList(
            LinkNetDecoderBlock(channels[level], inputs[level], stride=1 if level == 0 else 2) for level in range(4)
        )
        self.gates = nn.ModuleList(make_skip_attention(self.skip_attention, inputs[level], channels[level]) for level in range(4))
        half = max(width // 2, 1)
        self.head = nn.Sequential(
            *conv_bn_relu(width, half, stride=2, transposed=True),
            *conv_bn_relu(half, half),
            nn.ConvTranspose2d(half, out_channels, kernel_size=2, stride=2),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        links = []
        for encoder in self.encoders:
            links.append(x)
            x = encoder(x)
        for level in reversed(range(4)):
            x = self.decoders[level](x) + self.gates[level](links[level], gating=x)
        return self.head(x)


linknet_ag = register_model(
    ModelSpec(
        name="linknet_ag",
        title="LinkNet (attention-gated)",
        family="linknet",
        reference="Chaurasia, Culurciello. LinkNet: Exploiting Encoder Representations for Efficient Semantic Segmentation. VCIP 2017.",
        description=(
            "A fast encoder-decoder built for real-time segmentation. The encoder is a ResNet-18, and the "
            "decoder is deliberately light: it adds the encoder's features back in at each scale instead "
            "of concatenating them, so it needs few extra layers. In this version each of those links "
            "first passes through an attention gate that weights every pixel between 0 and 1. About a "
            "third of the U-Net's parameters and several times fewer operations per image."
        ),
        input_multiple=32,
        paper_config={"width": 64},
        lite_config={"width": 24},
    )
)(LinkNetAG)
