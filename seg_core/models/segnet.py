"""SegNet with attention-gated skips (Badrinarayanan, Kendall, Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation", IEEE TPAMI 2017).

Encoder: the 13 convolutional layers of VGG-16 as five stages of 2-2-3-3-3 ``conv3x3-BN-ReLU``
layers at ``width * (1, 2, 4, 8, 8)`` channels, each followed by 2x2 max pooling that remembers
where each maximum came from. Decoder: the mirror image; each stage max-unpools with those indices
(putting values back where they came from, which keeps boundaries sharp without learning any
upsampling) and refines with the same number of ``conv3x3-BN-ReLU`` layers; a final 3x3
convolution gives one logit per pixel, as in SegNet.

Plain SegNet passes only the pooling indices from encoder to decoder. Here, as an attention
variant, each encoder stage's output also goes through an additive attention gate (Oktay et al.
2018), driven by the decoder state one scale deeper, and is ADDED to the unpooled map. Addition
rather than concatenation keeps SegNet's layer sizes, so the only extra parameters are the five
gates. ``width=64`` is the paper size: 29.5 M parameters in the paper without gates, 30.1 M here
(29.44 M for the SegNet part plus 0.62 M for the gates); ``width=16`` is the "lite" size (about
1.9 M).

Example:
    >>> from seg_core.models import create_model
    >>> net = create_model("segnet_ag", width=16, in_channels=1)
    >>> [len(stage) // 3 for stage in net.encoders]  # conv-BN-ReLU layers per VGG-16 stage
    [2, 2, 3, 3, 3]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.attention import make_skip_attention
from seg_core.models.blocks.conv import SegmentationNet, conv_bn_relu
from seg_core.models.blocks.encoders import VGG16_LAYERS, VGG16_MULTIPLIERS, vgg_stages

__all__ = ["SegNetAG", "VGG16_LAYERS", "VGG16_MULTIPLIERS"]


class SegNetAG(SegmentationNet):
    """SegNet (VGG-16 encoder, index unpooling) with attention-gated additive skips.

    Args:
        in_channels: input modalities of the VGG encoder.
        out_channels: logits per pixel of SegNet's final 3x3 classifier.
        width: channels of the first stage (64 in the paper).
        layers: conv layers per stage (VGG-16: 2, 2, 3, 3, 3); the stage count sets the pooling steps.
    """

    # The attention on every skip, by name (blocks.attention.make_skip_attention), driven by the
    # deeper decoder state; a class attribute so the registered config stays that of the paper.
    skip_attention = "gate"

    def __init__(
        self, in_channels: int = 1, out_channels: int = 1, width: int = 64, layers: Sequence[int] = VGG16_LAYERS
    ) -> None:
        layers = tuple(layers)
        if len(layers) > len(VGG16_MULTIPLIERS) or min(layers, default=0) < 1:
            raise ValueError(f"layers must give 1 to {len(VGG16_MULTIPLIERS)} stages of at least one conv, got {list(layers)}")
        super().__init__(input_multiple=2 ** len(layers))
        channels = [width * VGG16_MULTIPLIERS[stage] for stage in range(len(layers))]
        self.encoders = vgg_stages(in_channels, channels, layers)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(kernel_size=2, stride=2)
        self.gates = nn.ModuleList(make_skip_attention(self.skip_attention, c, c) for c in channels)
        # Decoder stage s mirrors encoder stage s: all its layers keep the stage's width except the
        # last, which narrows to the next stage up (SegNet's conv*_1_D layers).
        self.decoders = nn.ModuleList()
        for stage, count in enumerate(layers):
            modules = []
            for _ in range(count - 1):
                modules += conv_bn_relu(channels[stage], channels[stage])
            if stage > 0:
                modules += conv_bn_relu(channels[stage], channels[stage - 1])
            self.decoders.append(nn.Sequential(*modules))
        # Stage 0's last layer is SegNet's classifier: a 3x3 convolution to the logits, no BN/ReLU.
        self.head = nn.Conv2d(channels[0], out_channels, kernel_size=3, padding=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        skips, indices = [], []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x, where = self.pool(x)
            indices.append(where)
        for stage in reversed(range(len(self.encoders))):
            skip = skips[stage]
            unpooled = self.unpool(x, indices[stage], output_size=skip.shape[-2:])
            x = self.decoders[stage](unpooled + self.gates[stage](skip, gating=x))
        return self.head(x)


segnet_ag = register_model(
    ModelSpec(
        name="segnet_ag",
        title="SegNet (attention-gated)",
        family="segnet",
        reference="Badrinarayanan, Kendall, Cipolla. SegNet: A Deep Convolutional Encoder-Decoder Architecture for Image Segmentation. IEEE TPAMI 2017.",
        description=(
            "A deep encoder-decoder whose encoder is the well-known VGG-16 image network. When it shrinks "
            "the image it remembers where each strongest response was, and the decoder puts values back "
            "exactly there when it enlarges the image again, which keeps object borders sharp. In this "
            "version the encoder's features are also passed across at every scale through attention gates "
            "that weight each pixel between 0 and 1 before they are added to the decoder."
        ),
        input_multiple=32,
        paper_config={"width": 64},
        lite_config={"width": 16},
    )
)(SegNetAG)
