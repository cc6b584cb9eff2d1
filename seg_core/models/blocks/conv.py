"""Convolution layers shared by the conventional networks, their common base class, and the U-Net skeleton.

Layer helpers return plain lists of modules so that callers unpack them into their own
``nn.Sequential``: the shipped weights' state-dict keys number the layers of that one flat
sequence (``decoder.3.weight``), and nesting a helper module would rename them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.models.blocks.attention import make_skip_attention


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    dilation: int = 1,
    transposed: bool = False,
    relu: bool = True,
) -> list[nn.Module]:
    """``[conv, BatchNorm, ReLU]`` keeping the size (or scaling it by ``stride``), as a list to unpack.

    The convolution has no bias because BatchNorm's shift replaces it. ``transposed`` makes it a
    transposed convolution that multiplies the size by ``stride``; ``relu=False`` leaves out the ReLU.
    """
    padding = dilation * (kernel_size // 2)
    if transposed:
        conv: nn.Module = nn.ConvTranspose2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, output_padding=stride - 1, bias=False
        )
    else:
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False)
    return [conv, nn.BatchNorm2d(out_channels), *([nn.ReLU(inplace=True)] if relu else [])]


def resnet_stem(in_channels: int, width: int) -> nn.Sequential:
    """The ResNet stem (He et al. 2016): 7x7 stride-2 convolution, BatchNorm, ReLU, 3x3 stride-2 max pooling (/4)."""
    return nn.Sequential(
        *conv_bn_relu(in_channels, width, kernel_size=7, stride=2), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    )


class ResidualBlock(nn.Module):
    """``relu(body(x) + shortcut(x))``, the residual unit of He et al. 2016.

    The shortcut is the identity, or a strided 1x1 convolution with BatchNorm where the body changes the
    shape; subclasses only say what their body is.
    """

    def __init__(self, body: nn.Module, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = body
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class DoubleConv(nn.Sequential):
    """``2 x (conv3x3 -> BatchNorm -> ReLU)``, the U-Net stage. Keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(*conv_bn_relu(in_channels, out_channels), *conv_bn_relu(out_channels, out_channels))


class SegmentationNet(nn.Module):
    """Base of every network in the zoo: logits ``(B, out, H, W)`` for images ``(B, C, H, W)``.

    Architectures that pool ``k`` times need sides divisible by ``2**k``. Rather than failing on a
    240x240 BraTS slice, :meth:`forward` reflect-pads the input up to the next multiple and crops
    the logits back, so every model accepts any size of at least ``input_multiple`` pixels.
    Subclasses implement :meth:`forward_features` on padded input.
    """

    def __init__(self, input_multiple: int) -> None:
        super().__init__()
        self.input_multiple = input_multiple

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images shaped (B, C, H, W), got shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        multiple = self.input_multiple
        if height < multiple or width < multiple:
            raise ValueError(f"input {height}x{width} is too small for this model; use at least {multiple}x{multiple} pixels")
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            # Reflection needs the pad to be smaller than the side; replicate handles the rest.
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        logits = self.forward_features(x)
        return logits[..., :height, :width]


class UNetSkeleton(SegmentationNet):
    """The U-Net decoder over a U-Net encoder, shared by the U-Net family; subclasses only choose the blocks.

    ``forward_features`` runs ``encoders[l]`` then ``pool`` at every level (keeping each encoder
    output as a skip), the ``bottleneck``, :meth:`refine_bottleneck`, then per level from the
    deepest: ``upsamplers[i]``, concatenation with the matching skip (through ``gates[i]`` when a
    skip attention is chosen), ``decoders[i]``; ``head`` gives the logits. The module names are the
    state-dict keys of the shipped weights, so they stay as they are.

    Args:
        in_channels, out_channels: input modalities and output logits per pixel.
        channels: channels per level, ``depth + 1`` of them (the last is the bottleneck's).
        make_stage: ``(in, out) -> module`` for the encoder and decoder stages.
        make_upsampler: ``(in, out) -> module`` doubling the spatial size (default: 2x2 transposed conv).
        bottleneck: the module at the deepest level (default ``make_stage`` from the last level).
        skip_attention: attention on every skip, by name (see
            :func:`~seg_core.models.blocks.attention.make_skip_attention`), gated by the decoder state one
            level deeper; ``None`` passes the skips unchanged.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        channels: list[int],
        make_stage: Callable[[int, int], nn.Module] = DoubleConv,
        make_upsampler: Callable[[int, int], nn.Module] | None = None,
        bottleneck: nn.Module | None = None,
        skip_attention: str | None = None,
    ) -> None:
        depth = len(channels) - 1
        super().__init__(input_multiple=2**depth)
        self.encoders = nn.ModuleList()
        previous = in_channels
        for level in range(depth):
            self.encoders.append(make_stage(previous, channels[level]))
            previous = channels[level]
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = bottleneck if bottleneck is not None else make_stage(channels[depth - 1], channels[depth])
        self.upsamplers = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in reversed(range(depth)):
            self.upsamplers.append((make_upsampler or _transposed_2x2)(channels[level + 1], channels[level]))
            self.decoders.append(make_stage(2 * channels[level], channels[level]))
        self.head = nn.Conv2d(channels[0], out_channels, kernel_size=1)
        # Built last, so the other layers draw the same initial weights with or without gates.
        self.gates = _skip_gates(skip_attention, channels)

    def refine_bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """Hook after the bottleneck (identity here; the Swin pyramid in ``unet_sspp``)."""
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            x = encoder(x)
            skips.append(x)
            x = self.pool(x)
        x = self.refine_bottleneck(self.bottleneck(x))
        for index, (upsample, decoder, skip) in enumerate(zip(self.upsamplers, self.decoders, reversed(skips), strict=True)):
            if self.gates is not None:
                skip = self.gates[index](skip, gating=x)
            x = decoder(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


def _transposed_2x2(in_channels: int, out_channels: int) -> nn.Module:
    return nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)


def _skip_gates(name: str | None, channels: list[int]) -> nn.ModuleList | None:
    # One gate per decoder step, deepest first as the decoders; the gating signal of the skip at
    # level l is the decoder state one level deeper (before its upsampling), as in Attention U-Net.
    if name is None:
        return None
    depth = len(channels) - 1
    return nn.ModuleList(make_skip_attention(name, channels[level], channels[level + 1]) for level in reversed(range(depth)))
