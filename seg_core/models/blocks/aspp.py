"""Atrous Spatial Pyramid Pooling (ASPP) of DeepLabv3 / DeepLabv3+.

MONAI's ``SimpleASPP`` has neither the image-pooling branch nor the fusing projection of the
paper, so the module is written out here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.models.blocks.conv import conv_bn_relu

__all__ = ["ASPP", "ImagePoolingBatchNorm"]


class ImagePoolingBatchNorm(nn.BatchNorm2d):
    """BatchNorm for the 1x1 image-pooling map that also trains with a batch of one.

    After global average pooling each channel holds one value per image, so in training mode a
    batch of one has no variance to normalise by and ``nn.BatchNorm2d`` raises. That happens in
    practice, e.g. as the last, incomplete batch of an epoch. For such a batch this layer
    normalises with its running statistics (as in eval mode) while still learning its affine
    weights; with two or more values per channel it is an ordinary BatchNorm, as in the paper.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling (Chen, Papandreou, Schroff, Adam, "Rethinking Atrous Convolution for Semantic Image Segmentation", arXiv 2017).

    Five parallel branches see the same features at growing fields of view: a 1x1 convolution,
    three 3x3 convolutions at dilations ``rates`` (6, 12, 18 at output stride 16), and image pooling
    (global average -> 1x1 convolution -> broadcast back), which adds the whole-image context that
    large dilations lose at the border. Every branch is conv -> BatchNorm -> ReLU; the concatenation
    is fused by a 1x1 convolution -> BatchNorm -> ReLU -> dropout.

    Args:
        in_channels: channels of the encoder output.
        out_channels: channels of each branch and of the fused output (256 in the paper).
        rates: dilations of the three 3x3 branches.
        dropout: dropout after the fusion (0.1 in the reference implementation).

    Shapes:
        input ``(B, in_channels, H, W)``, output ``(B, out_channels, H, W)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int = 256, rates: Sequence[int] = (6, 12, 18), dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(*conv_bn_relu(in_channels, out_channels, kernel_size=1))])
        self.branches.extend(nn.Sequential(*conv_bn_relu(in_channels, out_channels, dilation=rate)) for rate in rates)
        self.image_pooling = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            ImagePoolingBatchNorm(out_channels),
            nn.ReLU(inplace=True),
        )
        self.project = nn.Sequential(
            nn.Sequential(*conv_bn_relu(out_channels * (len(self.branches) + 1), out_channels, kernel_size=1)),
            nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [branch(x) for branch in self.branches]
        # A 1x1 map broadcast to every position: bilinear upsampling of one value is a copy.
        features.append(self.image_pooling(x).expand(-1, -1, *x.shape[-2:]))
        return self.project(torch.cat(features, dim=1))
