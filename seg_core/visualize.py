"""Pictures of scans and masks as RGB arrays (numpy only, so any front end can show them).

Example:
    >>> import numpy as np
    >>> rgb = overlay(np.random.rand(64, 64), np.eye(64, dtype=np.uint8), opacity=0.4)
    >>> rgb.shape, rgb.dtype
    ((64, 64, 3), dtype('uint8'))
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["window", "overlay", "mask_outline"]

TUMOR_COLOR = (255, 64, 32)


def window(image: np.ndarray, lower_percentile: float = 0.5, upper_percentile: float = 99.5) -> np.ndarray:
    """Map a 2D slice ``(H, W)`` to 8-bit gray, clipping at the given intensity percentiles."""
    image = np.asarray(image, dtype=np.float32)
    foreground = image[image != 0]
    if foreground.size == 0:
        return np.zeros(image.shape, dtype=np.uint8)
    low, high = np.percentile(foreground, [lower_percentile, upper_percentile])
    low = min(low, 0.0) if image.min() >= 0 else low
    scaled = (image - low) / (high - low if high > low else 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def mask_outline(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """The boundary pixels of a binary mask ``(H, W)``."""
    mask = np.asarray(mask, dtype=bool)
    return mask & ~ndimage.binary_erosion(mask, iterations=thickness, border_value=0)


def overlay(
    image: np.ndarray,
    mask: np.ndarray | None,
    opacity: float = 0.45,
    style: str = "fill",
    color: tuple[int, int, int] = TUMOR_COLOR,
    windowed: bool = False,
) -> np.ndarray:
    """RGB ``(H, W, 3)`` uint8 of a slice with the mask drawn over it.

    Args:
        image: the slice ``(H, W)``, raw intensities (or 8-bit gray when ``windowed``).
        mask: binary ``(H, W)`` or None.
        style: ``"fill"`` (translucent) or ``"contour"`` (outline only, fully opaque).
    """
    if style not in ("fill", "contour"):
        raise ValueError(f"unknown overlay style {style!r}; choose 'fill' or 'contour'")
    gray = np.asarray(image, dtype=np.uint8) if windowed else window(image)
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if mask is not None and np.any(mask):
        region = (
            mask_outline(mask, thickness=max(1, min(gray.shape) // 200)) if style == "contour" else np.asarray(mask, dtype=bool)
        )
        alpha = 1.0 if style == "contour" else float(np.clip(opacity, 0, 1))
        rgb[region] = (1 - alpha) * rgb[region] + alpha * np.asarray(color, dtype=np.float32)
    return rgb.round().astype(np.uint8)
