"""Convolution blocks shared by the conventional networks, and their common base class."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Sequential):
    """``2 x (conv3x3 -> BatchNorm -> ReLU)``, the U-Net stage. Keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


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
