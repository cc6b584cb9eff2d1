"""Dataset adapters for the public layouts in ``../shared/data``, and patient-level splits.

Every adapter takes a data root (the folder holding ``figshare/``, ``lgg/``, ...) or the dataset
folder itself, and exposes the same small interface:

* ``name``, ``modalities`` (channel order of every image) and ``volumetric`` class attributes;
* ``groups()``: the units of splitting, one per patient (or, for Figshare, which has no patient
  ids, one per block of consecutive ids), so that no patient lands in two splits;
* ``samples(group)``: the 2D slices of that group as :class:`Sample` (image, mask, modalities).

Volumetric datasets (LGG, BraTS) also stack a group's slices into a volume for per-volume metrics
with ``load_volume(group) -> (image (C, D, H, W), mask (D, H, W), spacing (D, H, W) or None)``.
Split files live in ``splits/<dataset>.json`` and are committed, so results reproduce.

Registered datasets (:data:`DATASETS`):

* ``figshare``: Cheng et al. T1c slices (:class:`FigshareDataset`);
* ``lgg``: Buda et al. TCGA-LGG ``kaggle_3m`` stacks (:class:`LggDataset`);
* ``brats2015`` and ``brats``: BraTS NIfTI cases, 2015 or 2020+ naming (:class:`BratsDataset`);
* ``coco``: the Roboflow COCO export of Figshare slices (:class:`CocoDataset`).

Example:
    >>> ds = open_dataset("figshare", "../shared/data")          # doctest: +SKIP
    >>> split = load_split("figshare")                             # doctest: +SKIP
    >>> first = next(ds.samples(split["test"][0]))                 # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from seg_core.data.base import DatasetError, Sample, natural_key
from seg_core.data.brats import BRATS_LAYOUTS, Brats2015Dataset, BratsDataset
from seg_core.data.coco import CocoDataset
from seg_core.data.figshare import FigshareDataset, read_figshare_patients
from seg_core.data.lgg import LggDataset
from seg_core.data.splits import (
    SPLIT_NAMES,
    SPLITS_DIR,
    coco_split_from_figshare,
    load_split,
    make_split,
    split_path,
    split_sha256,
    write_split,
)

__all__ = [
    "BRATS_LAYOUTS",
    "DATASETS",
    "SPLITS_DIR",
    "SPLIT_NAMES",
    "Brats2015Dataset",
    "BratsDataset",
    "CocoDataset",
    "DatasetError",
    "FigshareDataset",
    "LggDataset",
    "Sample",
    "coco_split_from_figshare",
    "load_split",
    "make_split",
    "natural_key",
    "open_dataset",
    "read_figshare_patients",
    "split_path",
    "split_sha256",
    "write_split",
]

DATASETS: dict[str, type] = {
    "figshare": FigshareDataset,
    "lgg": LggDataset,
    "brats2015": Brats2015Dataset,
    "brats": BratsDataset,
    "coco": CocoDataset,
}


def open_dataset(name: str, root: str | Path):
    """The adapter for dataset ``name`` over ``root``; ``KeyError`` listing the known names."""
    try:
        adapter = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}") from None
    return adapter(root)
