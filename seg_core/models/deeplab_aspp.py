"""DeepLabv3+ (Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018).

Encoder: a ResNet of bottleneck blocks (He et al. 2016; ResNet-101 in the paper: 3-4-23-3 blocks)
after a 7x7 stride-2 stem and max pooling. Its last stage keeps output stride 16 by replacing its
stride with dilation 2, with DeepLabv3's multi-grid rates (1, 2, 4) over its three blocks, so the
deepest features keep a finer grid without losing field of view. ASPP (DeepLabv3, Chen et al.
2017) on top: image pooling, 1x1, and 3x3 convolutions at dilations 6, 12 and 18, each with
BatchNorm and ReLU, fused by a 1x1 convolution with BatchNorm, ReLU and dropout. Decoder: the ASPP
output is upsampled 4x and concatenated with the first stage's low-level features (reduced to 48
channels by a 1x1 convolution), refined by two 3x3 convolutions, mapped to logits by a 1x1
convolution and upsampled 4x to full size (a 1x1 convolution commutes with bilinear upsampling, so
this equals upsampling first at a sixteenth of the cost).

``width=64`` with ResNet-101 is the paper size (about 59.3 M parameters); the "lite" size keeps the
same 101-layer structure at ``width=12`` with 64-channel ASPP and decoder (about 2.3 M).

Batch size: BatchNorm on the image-pooling branch sees one value per image and channel, which
``nn.BatchNorm2d`` refuses to train on with a batch of one; that branch uses
:class:`~seg_core.models.blocks.aspp.ImagePoolingBatchNorm`, which falls back to its running
statistics for such a batch. Eval mode works with any batch; train with batches of two or more.

Example:
    >>> import torch
    >>> from seg_core.models import create_model
    >>> net = create_model("deeplab_aspp", width=12, aspp_channels=64, low_level_channels=12, decoder_channels=64)
    >>> net.eval()(torch.zeros(1, 1, 128, 128)).shape
    torch.Size([1, 1, 128, 128])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.models._registry import ModelSpec, register_model
from seg_core.models.blocks.aspp import ASPP
from seg_core.models.blocks.conv import SegmentationNet, conv_bn_relu, resnet_stem
from seg_core.models.blocks.encoders import Bottleneck, resnet_stages

# Bottleneck is kept importable from here, where it used to live.
__all__ = ["DeepLabV3Plus", "Bottleneck", "RESNET101_LAYERS"]

RESNET101_LAYERS = (3, 4, 23, 3)


class DeepLabV3Plus(SegmentationNet):
    """DeepLabv3+ with a dilated ResNet encoder at output stride 16.

    Args:
        in_channels: number of input modalities.
        out_channels: number of output logits per pixel (1 for a binary tumor mask).
        width: channels of the stem; bottleneck stages have ``width * (1, 2, 4, 8)`` inner channels
            and four times that at their output (64 in the paper).
        layers: bottleneck blocks per stage (ResNet-101: 3, 4, 23, 3).
        multi_grid: dilation multipliers of the last stage's blocks (times 2), cycled if it has more.
        aspp_channels: channels of every ASPP branch and of its output (256 in the paper).
        aspp_rates: dilations of ASPP's 3x3 branches (6, 12, 18 at output stride 16).
        low_level_channels: channels the low-level features are reduced to (48 in the paper).
        decoder_channels: channels of the decoder's 3x3 convolutions (256 in the paper).
        dropout: dropout after the ASPP fusion.
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        width: int = 64,
        layers: Sequence[int] = RESNET101_LAYERS,
        multi_grid: Sequence[int] = (1, 2, 4),
        aspp_channels: int = 256,
        aspp_rates: Sequence[int] = (6, 12, 18),
        low_level_channels: int = 48,
        decoder_channels: int = 256,
        dropout: float = 0.1,
    ) -> None:
        layers = tuple(layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers must give the blocks of 4 stages, each at least 1, got {list(layers)}")
        # Stem /4, stages 2 and 3 /16; the dilated last stage keeps /16.
        super().__init__(input_multiple=16)
        self.stem = resnet_stem(in_channels, width)
        # Stages 2 and 3 halve the size; the last keeps /16 and dilates instead, by the multi-grid rates.
        self.stages = resnet_stages(
            Bottleneck,
            width,
            widths=[width * 2**stage for stage in range(4)],
            layers=layers,
            strides=(1, 2, 2, 1),
            dilations=((1,), (1,), (1,), tuple(2 * rate for rate in multi_grid)),
        )
        self.aspp = ASPP(width * 8 * Bottleneck.expansion, aspp_channels, rates=aspp_rates, dropout=dropout)
        self.low_level = nn.Sequential(*conv_bn_relu(width * Bottleneck.expansion, low_level_channels, kernel_size=1))
        self.decoder = nn.Sequential(
            *conv_bn_relu(aspp_channels + low_level_channels, decoder_channels), *conv_bn_relu(decoder_channels, decoder_channels)
        )
        self.head = nn.Conv2d(decoder_channels, out_channels, kernel_size=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        x = self.stem(x)
        low_level = x = self.stages[0](x)
        for stage in self.stages[1:]:
            x = stage(x)
        x = self.aspp(x)
        low_level = self.low_level(low_level)
        x = F.interpolate(x, size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        x = self.decoder(torch.cat([x, low_level], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


deeplab_aspp = register_model(
    ModelSpec(
        name="deeplab_aspp",
        title="DeepLabv3+ (ASPP)",
        family="deeplab",
        reference=(
            "Chen, Zhu, Papandreou, Schroff, Adam. Encoder-Decoder with Atrous Separable Convolution for Semantic "
            "Image Segmentation (DeepLabv3+). ECCV 2018."
        ),
        description=(
            "A deep residual network (ResNet-101 at paper size) that looks at the image at several "
            "fields of view at once: its ASPP module runs parallel convolutions with holes of different "
            "spacing plus a summary of the whole image, so it sees both a small lesion's texture and its "
            "surroundings. A light decoder then sharpens the coarse result with early, fine-grained "
            "features. Strong on objects of varied size; its borders are less crisp than a U-Net's. "
            "Train it with batches of two or more images."
        ),
        input_multiple=16,
        paper_config={
            "width": 64,
            "layers": [3, 4, 23, 3],
            "aspp_channels": 256,
            "low_level_channels": 48,
            "decoder_channels": 256,
        },
        lite_config={"width": 12, "layers": [3, 4, 23, 3], "aspp_channels": 64, "low_level_channels": 12, "decoder_channels": 64},
    )
)(DeepLabV3Plus)
