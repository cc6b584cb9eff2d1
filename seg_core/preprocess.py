"""Preprocessing shared by training and inference, so the two can never drift apart.

Each step is a small callable whose parameters are set at construction and stored in the weights'
``config.json`` (MONAI style): what a model was trained with is exactly what it is served with.
Arrays are channel-first: images ``(C, H, W)`` or batches ``(B, C, H, W)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IntensityNormalizer", "resize_images", "resize_masks"]


@dataclass(frozen=True)
class IntensityNormalizer:
    """Per-image, per-channel intensity normalisation.

    Kinds:
        ``"percentile"``: clip to the ``lower``/``upper`` percentiles of the image's nonzero
        voxels and scale to [0, 1]. Robust to the scanner's units, bit depth and outliers, so the
        same weights work on 8-bit PNG, 16-bit DICOM and z-scored NIfTI.
        ``"zscore"``: subtract the mean and divide by the standard deviation of nonzero voxels.
        ``"none"``: leave intensities as they are.

    Statistics are taken over nonzero voxels because MRI background is zero and would otherwise
    dominate them; an all-zero channel stays zero.
    """

    kind: str = "percentile"
    lower: float = 0.5
    upper: float = 99.5

    KINDS = ("percentile", "zscore", "none")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown intensity normalisation {self.kind!r}; choose one of {self.KINDS}")
        if not 0 <= self.lower < self.upper <= 100:
            raise ValueError(f"need 0 <= lower < upper <= 100, got {self.lower}, {self.upper}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Normalise ``image`` shaped ``(C, ...)``; returns float32 of the same shape."""
        image = np.asarray(image, dtype=np.float32)
        if self.kind == "none":
            return image.copy()
        out = np.empty_like(image)
        for channel in range(image.shape[0]):
            values = image[channel]
            foreground = values[values != 0]
            if foreground.size == 0:
                out[channel] = 0.0
                continue
            if self.kind == "percentile":
                low, high = np.percentile(foreground, [self.lower, self.upper])
                # Background (exact zeros) maps below the lowest tissue value after clipping,
                # as it does in a real image; include 0 in the range when tissue is all positive.
                low = min(low, 0.0) if values.min() >= 0 else low
                scale = high - low if high > low else 1.0
                out[channel] = np.clip((values - low) / scale, 0.0, 1.0)
            else:
                mean, std = float(foreground.mean()), float(foreground.std())
                out[channel] = (values - mean) / (std if std > 0 else 1.0)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None) -> IntensityNormalizer:
        return cls(**(config or {}))


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of ``(B, C, H, W)`` images or logits to ``size``; antialiased when shrinking."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    shrinking = images.shape[-2] > size[0] or images.shape[-1] > size[1]
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def resize_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize binary masks ``(B, 1, H, W)`` by area averaging and a 0.5 threshold (no aliasing)."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks.float()
    shrinking = masks.shape[-2] >= size[0] and masks.shape[-1] >= size[1]
    mode = {"mode": "area"} if shrinking else {"mode": "bilinear", "align_corners": False}
    return (F.interpolate(masks.float(), size=size, **mode) >= 0.5).float()
