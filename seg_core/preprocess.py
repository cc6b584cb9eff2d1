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

__all__ = ["IntensityNormalizer", "head_mask", "resize_images", "resize_masks"]


def head_mask(channel: np.ndarray) -> np.ndarray:
    """Voxels of one channel ``(...)`` that belong to the head, as a bool array of the same shape.

    Skull-stripped MRI stores a constant background: 0 in raw BraTS files, the z-score of 0 (a
    negative number) in BraTS 2015's ``*_subtrMeanDivStd`` files. That constant is the value most of
    the image's border carries (the border of every slice, the last two axes); every other voxel is
    head. Without such a constant (unstripped scans, noisy background) the whole image counts.
    """
    if channel.ndim < 2:
        return np.ones(channel.shape, dtype=bool)
    border = np.concatenate(
        [channel[..., 0, :].ravel(), channel[..., -1, :].ravel(), channel[..., :, 0].ravel(), channel[..., :, -1].ravel()]
    )
    values, counts = np.unique(border, return_counts=True)
    if counts.max() * 2 < border.size:
        return np.ones(channel.shape, dtype=bool)
    return channel != values[counts.argmax()]


@dataclass(frozen=True)
class IntensityNormalizer:
    """Per-image or per-volume, per-channel intensity normalisation.

    Kinds:
        ``"percentile"``: clip to the ``lower``/``upper`` percentiles of the image's nonzero
        voxels and scale to [0, 1]. Robust to the scanner's units, bit depth and outliers, so the
        same weights work on 8-bit PNG, 16-bit DICOM and z-scored NIfTI.
        ``"zscore"``: subtract the mean and divide by the standard deviation of nonzero voxels.
        ``"zscore_head"``: z-score over the head's voxels (:func:`head_mask`: all but the constant
        background of a skull-stripped scan), background set to 0, as nnU-Net normalises MRI. Raw
        scanner intensities and already z-scored files (BraTS 2015) then come out alike.
        ``"none"``: leave intensities as they are.

    ``scope`` says what one call sees at inference: ``"slice"`` (each 2D slice on its own, the
    only choice for 2D uploads) or ``"volume"`` (the statistics of the whole volume, then sliced;
    a 2D image is a volume of one slice). Training normalises with the same scope.

    Statistics of ``percentile`` and ``zscore`` are taken over nonzero voxels because MRI background
    is zero and would otherwise dominate them; an all-zero channel stays zero.
    """

    kind: str = "percentile"
    lower: float = 0.5
    upper: float = 99.5
    scope: str = "slice"

    KINDS = ("percentile", "zscore", "zscore_head", "none")
    SCOPES = ("slice", "volume")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown intensity normalisation {self.kind!r}; choose one of {self.KINDS}")
        if self.scope not in self.SCOPES:
            raise ValueError(f"unknown normalisation scope {self.scope!r}; choose one of {self.SCOPES}")
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
            inside = head_mask(values) if self.kind == "zscore_head" else values != 0
            foreground = values[inside]
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
                if self.kind == "zscore_head":
                    out[channel][~inside] = 0.0
        return out

    def volume(self, channels: np.ndarray) -> np.ndarray | None:
        """``channels`` ``(C, D, H, W)`` normalised as a whole when the scope is ``"volume"``, else ``None``."""
        return self(channels) if self.scope == "volume" else None

    def slice(self, channels: np.ndarray, index: int, normalized_volume: np.ndarray | None = None) -> np.ndarray:
        """Slice ``index`` of ``channels`` ``(C, D, H, W)``, normalised: ``(C, H, W)``.

        Pass :meth:`volume`'s result as ``normalized_volume`` to avoid normalising a volume once per slice.
        """
        if self.scope == "slice":
            return self(channels[:, index])
        if normalized_volume is None:
            normalized_volume = self(channels)
        return normalized_volume[:, index]

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
