"""A synthetic head-like input for profiling: spike rates depend on the input, and noise is no MRI.

Skull, grey and white matter, ventricles, an enhancing tumour with oedema, per MRI contrast,
normalised as the app normalises real scans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["phantom_sample"]

# Intensities of each tissue in each MRI contrast, relative (0..1); rough textbook appearance,
# enough to give the network the edges and flat regions of a real slice.
_TISSUES = ("scalp", "skull", "grey", "white", "csf", "oedema", "enhancing", "necrosis")
_CONTRASTS = {
    "t1": (0.90, 0.05, 0.60, 0.80, 0.20, 0.45, 0.55, 0.30),
    "t1c": (0.90, 0.05, 0.60, 0.80, 0.20, 0.45, 1.00, 0.30),
    "t2": (0.50, 0.05, 0.55, 0.40, 1.00, 0.85, 0.70, 0.95),
    "flair": (0.60, 0.05, 0.65, 0.50, 0.10, 0.95, 0.80, 0.50),
}


def _phantom_slice(height: int, width: int, modality: str, rng: np.random.Generator, z: float = 0.0) -> np.ndarray:
    """One axial slice of the head phantom in scanner-like units, ``(H, W)`` float32, 0 outside."""
    from scipy.ndimage import gaussian_filter

    y, x = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width), indexing="ij")
    # Slices away from the centre of the head are smaller, as in an ellipsoid.
    scale = math.sqrt(max(1.0 - (z / 1.3) ** 2, 0.05))
    head = (y / (0.85 * scale)) ** 2 + (x / (0.70 * scale)) ** 2
    # Wobbly white-matter border so the slice has curved edges at several scales.
    wobble = 0.06 * np.sin(6 * np.arctan2(y, x)) + 0.04 * np.sin(11 * np.arctan2(y, x) + 1.0)
    labels = np.full((height, width), -1, dtype=np.int64)
    labels[head < 1.0] = _TISSUES.index("scalp")
    labels[head < 0.90] = _TISSUES.index("skull")
    labels[head < 0.80] = _TISSUES.index("grey")
    labels[head < 0.55 + wobble] = _TISSUES.index("white")
    for side in (-1, 1):
        ventricle = ((y + 0.05) / (0.22 * scale)) ** 2 + ((x - side * 0.11) / (0.06 * scale)) ** 2 < 1
        labels[ventricle] = _TISSUES.index("csf")
    tumour = ((y - 0.30) ** 2 + (x + 0.28) ** 2 + z**2) / scale
    labels[(tumour < 0.09) & (head < 0.80)] = _TISSUES.index("oedema")
    labels[(tumour < 0.035) & (head < 0.80)] = _TISSUES.index("enhancing")
    labels[(tumour < 0.015) & (head < 0.80)] = _TISSUES.index("necrosis")
    contrast = np.asarray(_CONTRASTS.get(modality, _CONTRASTS["t1c"]), dtype=np.float32)
    image = np.where(labels >= 0, contrast[np.clip(labels, 0, None)], 0.0).astype(np.float32)
    # Smooth tissue texture (bias field and anatomy) plus acquisition noise, inside the head only.
    texture = gaussian_filter(rng.standard_normal((height, width)), sigma=max(height, width) / 40)
    texture /= texture.std() + 1e-8
    image = image * (1 + 0.08 * texture) + 0.03 * rng.standard_normal((height, width))
    image = gaussian_filter(image, sigma=max(height, width) / 512)  # partial-volume blur
    return np.where(labels >= 0, np.clip(image, 0.01, None) * 1000.0, 0.0).astype(np.float32)


def phantom_sample(
    input_shape: Sequence[int],
    modalities: Sequence[str] | None = None,
    normalization: dict[str, Any] | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """A synthetic head-like input, normalised as the app normalises scans.

    Args:
        input_shape: ``(B, C, H, W)`` for slices or ``(B, C, D, H, W)`` for volumes.
        modalities: contrast of each channel (``"t1"``, ``"t1c"``, ``"t2"``, ``"flair"``);
            default ``t1c`` for every channel.
        normalization: an :class:`~seg_core.preprocess.IntensityNormalizer` config; default
            percentile normalisation to [0, 1] (the training default).
        seed: seed of the texture and noise; batch item ``b`` uses ``seed + b``.

    Returns:
        Float32 tensor of ``input_shape``.

    Raises:
        ValueError: for other ranks (pass a real ``sample=`` to :func:`profile_model`).
    """
    from seg_core.preprocess import IntensityNormalizer

    shape = tuple(int(s) for s in input_shape)
    if len(shape) not in (4, 5):
        raise ValueError(f"the phantom covers (B, C, H, W) and (B, C, D, H, W) inputs, got {shape}; pass sample= instead")
    channels = shape[1]
    modalities = list(modalities) if modalities else ["t1c"] * channels
    if len(modalities) != channels:
        raise ValueError(f"{channels} channels but {len(modalities)} modalities: {modalities}")
    normalize = IntensityNormalizer.from_dict(normalization)
    depths = np.linspace(-0.6, 0.6, shape[2]) if len(shape) == 5 else np.zeros(1)
    height, width = shape[-2:]
    items = []
    for b in range(shape[0]):
        rng = np.random.default_rng(seed + b)
        slices = [normalize(np.stack([_phantom_slice(height, width, m, rng, z=float(z)) for m in modalities])) for z in depths]
        items.append(np.stack(slices, axis=1) if len(shape) == 5 else slices[0])
    return torch.from_numpy(np.stack(items)).float()
