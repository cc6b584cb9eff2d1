"""Reading any MRI input into one :class:`Scan`, and writing masks back.

Layout convention (every reader produces it, every consumer relies on it):

* ``Scan.array`` is ``(C, D, H, W)`` float32: channels (modalities), slices, rows, columns.
  A 2D image is a volume of one slice (``D == 1``).
* Volumes are shown in the radiological convention: slices run inferior -> superior, row 0 is
  anterior, column 0 is the patient's right (NIfTI is reoriented to that view with nibabel's
  orientation tools, and the mask is turned back to the file's own voxel order when written).
* ``spacing`` is ``(D, H, W)`` in millimetres.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Scan", "ScanError"]

CANONICAL_MODALITIES = ("t1", "t1c", "t2", "flair")
UNSPECIFIED = "unspecified"


class ScanError(ValueError):
    """An input that cannot be read as MRI; the message is written for the person who uploaded it."""


@dataclass
class Scan:
    """One MRI study, as every later step sees it.

    Attributes:
        array: intensities ``(C, D, H, W)`` float32, finite.
        modalities: one name per channel: ``"t1"``, ``"t1c"``, ``"t2"``, ``"flair"``, or
            ``"unspecified"`` for a single grayscale channel of unknown contrast.
        spacing: voxel size ``(D, H, W)`` in mm (1.0 where the file does not say).
        affine: 4x4 voxel-to-world (RAS+ mm) matrix of the *source file's* voxel order.
        source_format: ``"png"``, ``"jpeg"``, ``"tiff"``, ``"nifti"``, ``"dicom"``, ``"zip"``, ``"brats"``.
        name: file or case name, for display.
        is_2d: True for a single image (masks are written as PNG).
        label: ground-truth mask ``(D, H, W)`` uint8 when the input carried one (e.g. a BraTS ``_seg``).
        meta: reader details needed to write results back (e.g. NIfTI header, orientation transform).
    """

    array: np.ndarray
    modalities: tuple[str, ...]
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    source_format: str = ""
    name: str = ""
    is_2d: bool = False
    label: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(D, H, W)``."""
        return tuple(self.array.shape[1:])  # type: ignore[return-value]

    @property
    def num_slices(self) -> int:
        return self.array.shape[1]
