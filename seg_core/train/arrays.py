"""Training data as arrays: a split's slices normalised as inference will, resized once, cached as ``.npz``."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from seg_core.data import open_dataset
from seg_core.preprocess import IntensityNormalizer, head_mask, resize_images, resize_masks
from seg_core.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
CACHE_DIR = ROOT / "cache"


def _cache_key(config: TrainConfig, split_name: str, groups: list[str]) -> str:
    blob = json.dumps([config.dataset, config.size, config.normalization, split_name, sorted(groups)], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def load_arrays(config: TrainConfig, split_name: str, groups: list[str]) -> dict[str, np.ndarray]:
    """Normalised, resized slices of ``groups`` as arrays ``images (N, C, S, S)``, ``masks (N, 1, S, S)``.

    Cached on disk; the cache key covers dataset, size, normalisation and the groups.
    """
    CACHE_DIR.mkdir(exist_ok=True)
    path = CACHE_DIR / f"{config.dataset}_{split_name}_{config.size}_{_cache_key(config, split_name, groups)}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            return {key: cached[key] for key in cached.files}
    dataset = open_dataset(config.dataset, config.data_root)
    normalize = IntensityNormalizer.from_dict(config.normalization)
    size = (config.size, config.size)
    images, masks, volume_ids = [], [], []
    for group_index, group in enumerate(groups):
        for image, mask in _normalized_slices(dataset, group, normalize):
            images.append(resize_images(torch.from_numpy(image)[None], size)[0].numpy().astype(np.float16))
            masks.append(resize_masks(torch.from_numpy(mask)[None, None], size)[0].numpy().astype(np.uint8))
            volume_ids.append(group_index)
    if not images:
        raise ValueError(f"no slices found for split {split_name!r} of {config.dataset} under {config.data_root}")
    arrays = {"images": np.stack(images), "masks": np.stack(masks), "groups": np.asarray(volume_ids, dtype=np.int32)}
    # Written under a temporary name and renamed: the queue's jobs start side by side, and one must
    # never read the half-written file of another (os.replace is atomic within a folder).
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as stream:
            np.savez(stream, **arrays)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return arrays


def _normalized_slices(dataset, group: str, normalize: IntensityNormalizer) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The training slices of ``group``, normalised as inference will: ``(image (C, H, W), mask (H, W))``.

    With a volume-scope normaliser the whole volume is normalised first and the slices that hold
    head (:func:`~seg_core.preprocess.head_mask`) or tumor are kept, the ones inference does not skip.
    """
    if normalize.scope == "volume" and dataset.volumetric:
        volume, mask, _ = dataset.load_volume(group)
        normalized = normalize(volume)
        head = np.any([head_mask(channel) for channel in volume], axis=0)
        keep = head.any(axis=(1, 2)) | mask.any(axis=(1, 2))
        for index in np.flatnonzero(keep):
            yield normalized[:, index], mask[index]
        return
    for sample in dataset.samples(group):
        yield normalize(sample.image), sample.mask
