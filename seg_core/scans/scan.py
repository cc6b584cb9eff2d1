"""The :class:`Scan` every reader produces, the modality names it uses, and its JSON summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

CANONICAL_MODALITIES = ("t1", "t1c", "t2", "flair")
UNSPECIFIED = "unspecified"
#: Channel names of an RGB slice whose channels differ: the LGG kaggle_3m convention
#: (pre-contrast, FLAIR, post-contrast), in the file's R, G, B order.
LGG_RGB_MODALITIES = ("t1", "flair", "t1c")
#: nibabel axis codes of the display array read as voxel axes (W, H, D).
DISPLAY_AXCODES = ("L", "P", "S")

#: Names scanners, data sets and users give the four contrasts, mapped to the canonical names.
MODALITY_ALIASES = {
    "t1": "t1",
    "t1n": "t1",
    "t1w": "t1",
    "t1pre": "t1",
    "t1c": "t1c",
    "t1ce": "t1c",
    "t1gd": "t1c",
    "t1post": "t1c",
    "t2": "t2",
    "t2w": "t2",
    "flair": "flair",
    "t2f": "flair",
    "t2flair": "flair",
}


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
    def spacing_known(self) -> bool:
        """False when the file records no pixel size (PNG/JPEG/TIFF): sizes are then in pixels, not mm."""
        return bool(self.meta.get("spacing_known", True))

    @property
    def num_slices(self) -> int:
        return self.array.shape[1]

    @property
    def num_channels(self) -> int:
        """``C``, the number of modalities."""
        return self.array.shape[0]


def add_note(scan: Scan, text: str) -> None:
    """Record a reader remark (an ignored file, an assumed spacing) that :func:`describe` reports."""
    scan.meta.setdefault("notes", []).append(text)


def canonical_modality(name: str) -> str:
    """``"T1-CE"`` -> ``"t1c"``; a name with no alias is only lower-cased."""
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    return MODALITY_ALIASES.get(key, str(name).strip().lower())


def describe(scan: Scan) -> dict[str, Any]:
    """Summarise a scan for the CLI and the app (JSON-serialisable, no patient data).

    Returns:
        ``name``, ``format``, ``shape`` ``[D, H, W]``, ``channels``, ``modalities``, ``spacing_mm``
        ``[D, H, W]``, ``voxel_volume_ml``, ``is_2d``, ``orientation`` (axis codes of the source
        voxel order, volumes only), ``has_label``, ``label_voxels``, ``intensity_range`` per channel,
        and ``notes`` (reader remarks such as ignored files or an assumed slice spacing).
    """
    d, h, w = scan.shape
    spacing = [float(s) for s in scan.spacing]
    info: dict[str, Any] = {
        "name": scan.name,
        "format": scan.source_format,
        "shape": [int(d), int(h), int(w)],
        "channels": int(scan.array.shape[0]),
        "modalities": list(scan.modalities),
        "spacing_mm": spacing,
        "voxel_volume_ml": float(np.prod(spacing) / 1000.0),
        "is_2d": bool(scan.is_2d),
        "orientation": None,
        "has_label": scan.label is not None,
        "label_voxels": int(np.count_nonzero(scan.label)) if scan.label is not None else None,
        "intensity_range": [[float(c.min()), float(c.max())] for c in scan.array],
        "notes": list(scan.meta.get("notes", [])),
    }
    if not scan.is_2d:
        import nibabel as nib

        try:
            info["orientation"] = "".join(nib.aff2axcodes(scan.affine))
        except Exception:  # a degenerate affine has no axis codes; the summary still works
            info["orientation"] = None
    return info
