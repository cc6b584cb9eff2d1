"""The input and the target every explanation shares: one slice as the model sees it, and the region.

The **target** is one number per image: the sum of the tumor logits over the region the model
itself predicts on this input (:class:`RegionLogitSum`), so the maps answer "what makes the model
call *this* region tumor". When the model predicts no tumor, the region falls back to the pixels
with the highest logits (the ``region_source`` says which).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from seg_core.preprocess import resize_images

if TYPE_CHECKING:
    from seg_core.inference import Segmenter
    from seg_core.scans import Scan

__all__ = ["RegionLogitSum", "resize_map", "slice_input", "tumor_region"]


def slice_input(segmenter: Segmenter, scan: Scan, index: int) -> torch.Tensor:
    """The model's input for slice ``index`` of ``scan``: ``(1, C, h, w)`` float32, normalised and resized.

    Exactly what :class:`~seg_core.inference.Segmenter` feeds the network for that slice (its
    modalities, normaliser and input size), without test-time flipping.
    """
    if not 0 <= index < scan.num_slices:
        raise ValueError(f"slice index {index} is outside the scan's 0..{scan.num_slices - 1}")
    image = torch.from_numpy(segmenter.normalize.slice(segmenter.prepare(scan), index))[None]
    return resize_images(image, segmenter.input_size).float()


class RegionLogitSum(nn.Module):
    """Forward wrapper: the sum of a segmentation model's tumor logits over a fixed region.

    Captum attributes scalar outputs; this turns the per-pixel logits ``(B, 1, H, W)`` into one
    number per image, ``(B,)``: how strongly the model calls the region tumor.

    Args:
        model: a segmentation network returning logits ``(B, 1, H, W)``.
        region: bool or 0/1 map ``(H, W)``, the pixels whose logits are summed.
    """

    def __init__(self, model: nn.Module, region: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("region", region.detach().float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)[:, 0]
        return (logits * self.region).sum(dim=(-2, -1))


def tumor_region(
    model: nn.Module, x: torch.Tensor, threshold: float = 0.5, fallback_fraction: float = 0.005
) -> tuple[torch.Tensor, str]:
    """The region an explanation targets: the model's own tumor prediction on ``x``.

    Args:
        model: segmentation network.
        x: one input ``(1, C, H, W)``.
        threshold: probability at or above which a pixel is tumor.
        fallback_fraction: when nothing reaches the threshold, this fraction of the pixels with the
            highest logits (at least 16) is used instead.

    Returns:
        ``(region, source)``: bool ``(H, W)`` and ``"prediction"`` or ``"top_logits"``.
    """
    check_input(x)
    with torch.inference_mode():
        logits = model(x)[0, 0].float()
    return region_from_logits(logits, threshold, fallback_fraction)


def region_from_logits(logits: torch.Tensor, threshold: float, fallback_fraction: float = 0.005) -> tuple[torch.Tensor, str]:
    """:func:`tumor_region` from logits already computed, ``(H, W)``."""
    region = torch.sigmoid(logits) >= threshold
    if region.any():
        return region.clone(), "prediction"
    count = min(logits.numel(), max(16, int(round(fallback_fraction * logits.numel()))))
    flat = torch.zeros(logits.numel(), dtype=torch.bool)
    flat[torch.topk(logits.flatten(), count).indices] = True
    return flat.view_as(logits), "top_logits"


def check_input(x: torch.Tensor) -> None:
    """Every explanation takes one image, ``(1, C, H, W)``."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"explanations take one image shaped (1, C, H, W), got shape {tuple(x.shape)}")


def resize_map(values: np.ndarray, shape: tuple[int, int], mode: str = "bilinear") -> np.ndarray:
    """Resize a 2D map ``(h, w)`` to ``shape`` (``"bilinear"`` for heatmaps, ``"nearest"`` for masks)."""
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))[None, None]
    if tuple(tensor.shape[-2:]) == tuple(shape):
        return np.asarray(values, dtype=np.float32)
    options = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(tensor, size=tuple(shape), mode=mode, **options)[0, 0].numpy()
