"""What every dataset adapter shares: the :class:`Sample` it yields and the errors it raises."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


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


def unknown_group(dataset: str, group: str, known: Sequence[str]) -> DatasetError:
    """The error for a group the dataset does not have, naming (the first few of) those it has."""
    shown = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
    return DatasetError(f"unknown group {group!r} in {dataset}; choose one of: {shown}")


def natural_key(text: str) -> list:
    """Sort key that orders ``case_2`` before ``case_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]
