"""Encoders the decoders of the zoo take: ResNet stages of basic or bottleneck blocks, and VGG stages.

As in segmentation_models_pytorch, an architecture is a decoder on top of an encoder that is built
elsewhere; here an encoder is a function returning its stages as an ``nn.ModuleList`` (one module
per scale, run in turn) that the network keeps under its own attribute name. A wrapper module would
add a level to every state-dict key (``encoder.stages.0...``) and break the shipped weights.

Example:
    >>> import torch
    >>> stages = resnet_stages(BasicBlock, in_channels=8, widths=(8, 16), layers=(2, 2), strides=(1, 2))
    >>> x = torch.zeros(1, 8, 32, 32)
    >>> [tuple((x := stage(x)).shape[1:]) for stage in stages]
    [(8, 32, 32), (16, 16, 16)]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch.nn as nn

from seg_core.models.blocks.conv import ResidualBlock, conv_bn_relu

__all__ = ["BasicBlock", "Bottleneck", "resnet_stages", "vgg_stages", "VGG16_LAYERS", "VGG16_MULTIPLIERS"]

# Convolution layers per stage of VGG-16, and each stage's width relative to the first.
VGG16_LAYERS = (2, 2, 3, 3, 3)
VGG16_MULTIPLIERS = (1, 2, 4, 8, 8)


class BasicBlock(ResidualBlock):
    """ResNet BasicBlock (He et al. 2016): ``relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x))``.

    The shortcut is a strided 1x1 convolution with BatchNorm when the shape changes, else identity.
    """

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> None:
        body = nn.Sequential(
            *conv_bn_relu(in_channels, out_channels, stride=stride, dilation=dilation),
            *conv_bn_relu(out_channels, out_channels, dilation=dilation, relu=False),
        )
        super().__init__(body, in_channels, out_channels, stride)


class Bottleneck(ResidualBlock):
    """ResNet bottleneck block: ``conv1x1 -> conv3x3 (stride, dilation) -> conv1x1 (x4)`` plus shortcut.

    Args:
        in_channels: input channels.
        planes: channels of the inner 3x3 convolution; the output has ``4 * planes``.
        stride: stride of the 3x3 convolution (as in torchvision's ResNet v1.5).
        dilation: dilation of the 3x3 convolution.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        out_channels = planes * self.expansion
        body = nn.Sequential(
            *conv_bn_relu(in_channels, planes, kernel_size=1),
            *conv_bn_relu(planes, planes, stride=stride, dilation=dilation),
            *conv_bn_relu(planes, out_channels, kernel_size=1, relu=False),
        )
        super().__init__(body, in_channels, out_channels, stride)


def resnet_stages(
    block: Callable[..., nn.Module],
    in_channels: int,
    widths: Sequence[int],
    layers: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[Sequence[int]] | None = None,
) -> nn.ModuleList:
    """Stages of residual blocks, as in the ResNets of He et al. 2016.

    Args:
        block: ``block(in_channels, width, stride=..., dilation=...)``, e.g. :class:`BasicBlock`; its
            attribute ``expansion`` gives the output channels per unit of width (1 when it has none).
        in_channels: channels entering the first stage (the stem's output).
        widths: the ``width`` of every stage's blocks.
        layers: blocks per stage.
        strides: stride of every stage's first block (the others keep the size).
        dilations: per stage, the dilations of its blocks, cycled (DeepLab's multi-grid); default 1.

    Returns:
        ``nn.ModuleList`` of one ``nn.Sequential`` of blocks per stage.
    """
    stages = nn.ModuleList()
    previous = in_channels
    for stage, (width, count) in enumerate(zip(widths, layers, strict=True)):
        rates = dilations[stage] if dilations is not None else (1,)
        blocks = []
        for index in range(count):
            stride = strides[stage] if index == 0 else 1
            blocks.append(block(previous, width, stride=stride, dilation=rates[index % len(rates)]))
            previous = width * getattr(block, "expansion", 1)
        stages.append(nn.Sequential(*blocks))
    return stages


def vgg_stages(in_channels: int, widths: Sequence[int], layers: Sequence[int]) -> nn.ModuleList:
    """The convolutional stages of VGG (Simonyan, Zisserman, ICLR 2015): ``layers[s]`` x ``conv3x3-BN-ReLU``.

    VGG-16 is ``layers=VGG16_LAYERS`` at ``widths = 64 * VGG16_MULTIPLIERS``. Pooling between the
    stages is left to the network (SegNet keeps the pooling indices).
    """
    stages = nn.ModuleList()
    previous = in_channels
    for width, count in zip(widths, layers, strict=True):
        modules = conv_bn_relu(previous, width)
        for _ in range(count - 1):
            modules += conv_bn_relu(width, width)
        stages.append(nn.Sequential(*modules))
        previous = width
    return stages
