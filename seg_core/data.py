"""Dataset adapters for the public layouts in ``../shared/data``, and patient-level splits.

Every adapter takes a data root (the folder holding ``figshare/``, ``lgg/``, ...) or the dataset
folder itself, and exposes the same small interface:

* ``groups()``: the units of splitting, one per patient (or, for Figshare, which has no patient
  ids, one per block of consecutive ids), so that no patient lands in two splits;
* ``samples(group)``: the 2D slices of that group as :class:`Sample` (image, mask, modalities).

Volumetric datasets (LGG, BraTS) also stack a group's slices into a volume for per-volume metrics.
Split files live in ``splits/<dataset>.json`` and are committed, so results reproduce.

Example:
    >>> ds = open_dataset("figshare", "../shared/data")          # doctest: +SKIP
    >>> split = load_split("figshare")                             # doctest: +SKIP
    >>> first = next(ds.samples(split["test"][0]))                 # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Sample",
    "DATASETS",
    "open_dataset",
    "load_split",
    "make_split",
    "SPLITS_DIR",
    "FigshareDataset",
]

SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"
SPLIT_NAMES = ("train", "val", "test")


class DatasetError(ValueError):
    """A data folder is missing or does not have the expected layout."""


@dataclass
class Sample:
    """One 2D slice with its ground truth.

    Attributes:
        case_id: unique id within the dataset, e.g. ``"1234"`` or ``"TCGA_CS_4943_20000902/12"``.
        group: the patient (or id block) the slice belongs to: the unit of splitting.
        image: raw intensities ``(C, H, W)`` float32, channels in the order of ``modalities``.
        mask: ground truth ``(H, W)`` uint8 in {0, 1}.
        modalities: one name per channel (``"t1"``, ``"t1c"``, ``"t2"``, ``"flair"``).
        spacing: in-plane pixel spacing ``(row, column)`` in mm when known.
        slice_index: position of the slice in its volume (volumetric datasets only).
    """

    case_id: str
    group: str
    image: np.ndarray
    mask: np.ndarray
    modalities: tuple[str, ...]
    spacing: tuple[float, float] | None = None
    slice_index: int | None = None
    extra: dict = field(default_factory=dict)


def _read_gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


class FigshareDataset:
    """Cheng et al. 2015 T1-contrast slices: ``figshare/images/<id>.png`` + ``masks/<id>.png``.

    There are no patient ids, and consecutive ids are mostly slices of one patient, so the unit of
    splitting is a block of ``BLOCK`` consecutive ids (``"0001-0064"``, ...). Blocks depend only on
    the id, so a full download (ids 1..3064, 512x512) uses the same committed split.
    """

    name = "figshare"
    modalities = ("t1c",)
    volumetric = False
    BLOCK = 64
    # The full release holds ids 1..3064: 48 blocks of 64.
    ALL_GROUPS = tuple(f"{start:04d}-{start + 63:04d}" for start in range(1, 3065, 64))

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        folder = root / "figshare" if (root / "figshare").is_dir() else root
        self.images_dir, self.masks_dir = folder / "images", folder / "masks"
        if not self.images_dir.is_dir() or not self.masks_dir.is_dir():
            raise DatasetError(f"no Figshare layout (images/ and masks/) under {root}")
        self._ids = sorted(
            int(path.stem) for path in self.images_dir.glob("*.png") if path.stem.isdigit() and (self.masks_dir / path.name).exists()
        )
        if not self._ids:
            raise DatasetError(f"no image/mask pairs in {self.images_dir}")

    @classmethod
    def group_of(cls, case_id: int) -> str:
        start = (case_id - 1) // cls.BLOCK * cls.BLOCK + 1
        return f"{start:04d}-{start + cls.BLOCK - 1:04d}"

    def groups(self) -> list[str]:
        return sorted({self.group_of(i) for i in self._ids})

    def case_ids(self, group: str | None = None) -> list[int]:
        return [i for i in self._ids if group is None or self.group_of(i) == group]

    def load(self, case_id: int) -> Sample:
        image = _read_gray(self.images_dir / f"{case_id}.png").astype(np.float32)
        mask = (_read_gray(self.masks_dir / f"{case_id}.png") > 127).astype(np.uint8)
        return Sample(str(case_id), self.group_of(case_id), image[None], mask, self.modalities)

    def samples(self, group: str) -> Iterator[Sample]:
        for case_id in self.case_ids(group):
            yield self.load(case_id)


DATASETS: dict[str, type] = {"figshare": FigshareDataset}


def open_dataset(name: str, root: str | Path):
    """The adapter for dataset ``name`` over ``root``; ``KeyError`` listing the known names."""
    try:
        adapter = DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}") from None
    return adapter(root)


def make_split(groups: list[str], fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), seed: int = 0) -> dict[str, list[str]]:
    """Shuffle ``groups`` with ``seed`` and cut them into train/val/test by ``fractions``.

    Val and test each get at least one group when there are three or more groups.
    """
    if len(groups) < 3:
        raise ValueError(f"need at least 3 groups (patients) to split, got {len(groups)}")
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    n_val = max(1, round(fractions[1] * len(order)))
    n_test = max(1, round(fractions[2] * len(order)))
    n_train = len(order) - n_val - n_test
    return {
        "train": sorted(order[:n_train]),
        "val": sorted(order[n_train : n_train + n_val]),
        "test": sorted(order[n_train + n_val :]),
    }


def split_path(dataset: str) -> Path:
    return SPLITS_DIR / f"{dataset}.json"


def load_split(dataset: str) -> dict[str, list[str]]:
    """The committed split of ``dataset``: ``{"train": [...], "val": [...], "test": [...]}`` of groups."""
    path = split_path(dataset)
    if not path.exists():
        raise DatasetError(f"no split file for {dataset!r} at {path}; create it with `python -m seg_core split {dataset}`")
    content = json.loads(path.read_text())
    return {name: list(content[name]) for name in SPLIT_NAMES}


def natural_key(text: str) -> list:
    """Sort key that orders ``case_2`` before ``case_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
