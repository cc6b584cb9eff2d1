"""Base of the closed-form baselines: models fitted by ``fit(images, masks)`` rather than by gradient descent.

Their whole fitted state lives in registered buffers whose shapes follow from the constructor config,
so they save and load as safetensors like every other model of the zoo (never pickle).
"""

from __future__ import annotations

import numpy as np
import torch

from seg_core.models.blocks.conv import SegmentationNet

__all__ = ["MIN_SIDE", "LOGIT_EPS", "ClosedFormNet", "as_tensor", "check_training_arrays"]

MIN_SIDE = 16
"""Smallest image side the baselines accept (the largest default window, 15 px, must fit)."""

LOGIT_EPS = 1e-4
"""Probabilities are clamped to ``[eps, 1 - eps]`` before the logit, so outputs stay finite (about +-9.2)."""


def as_tensor(array: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """``array`` (numpy or torch) as a tensor on ``device``, its dtype unchanged."""
    tensor = array if isinstance(array, torch.Tensor) else torch.from_numpy(np.asarray(array))
    return tensor.to(device)


def check_training_arrays(images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor, in_channels: int) -> None:
    """Raise ``ValueError`` unless ``images`` are ``(N, in_channels, H, W)`` and ``masks`` ``(N, 1, H, W)``, N >= 1."""
    if images.ndim != 4 or images.shape[1] != in_channels:
        raise ValueError(f"images must be shaped (N, {in_channels}, H, W), got {tuple(images.shape)}")
    if masks.ndim != 4 or masks.shape[1] != 1 or masks.shape[0] != images.shape[0] or masks.shape[2:] != images.shape[2:]:
        raise ValueError(f"masks must be shaped (N, 1, H, W) like the images {tuple(images.shape)}, got {tuple(masks.shape)}")
    if images.shape[0] == 0:
        raise ValueError("fit needs at least one image")


class ClosedFormNet(SegmentationNet):
    """Shared input checks of the baselines: any size of at least :data:`MIN_SIDE`, no padding.

    The base class pads to ``input_multiple``; these models work per pixel at any size, and padding
    would shift the position-dependent outputs, so inputs go to :meth:`forward_features` unpadded.
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(input_multiple=MIN_SIDE)
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}")
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images shaped (B, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"this model takes {self.in_channels} channel(s), got {x.shape[1]} in shape {tuple(x.shape)}")
        height, width = x.shape[-2:]
        if height < MIN_SIDE or width < MIN_SIDE:
            raise ValueError(f"input {height}x{width} is too small for this model; use at least {MIN_SIDE}x{MIN_SIDE} pixels")
        return self.forward_features(x)
