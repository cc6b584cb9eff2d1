"""Orientation: source voxel order <-> the display layout every Scan uses (nibabel orientation tools)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .budget import charge
from .limits import ScanError
from .scan import DISPLAY_AXCODES, Scan

logger = logging.getLogger(__name__)

# Display axis codes of (W, H, D) for a single slice, by the world axis its normal is closest to:
# axial as volumes; coronal and sagittal with superior at the top and, sagittal, anterior on the left.
_SINGLE_SLICE_AXCODES = {2: ("L", "P", "S"), 1: ("L", "I", "A"), 0: ("P", "I", "L")}
_PLANES = {2: "axial", 1: "coronal", 0: "sagittal"}


def display_ornt(affine: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """nibabel orientation transform from the source voxel axes to the display axes.

    Volumes go to (W, H, D) = (L, P, S). A single slice (exactly one spatial size 1 in ``shape``) is
    shown in its own plane instead, so a lone coronal or sagittal DICOM image stays a ``D == 1`` image.
    """
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

    source = io_orientation(np.asarray(affine, dtype=float))
    if np.isnan(source).any():
        raise ScanError("The scan's orientation matrix is degenerate, so its left/right and front/back cannot be told.")
    target = DISPLAY_AXCODES
    plane = _single_slice_world_axis(source, shape)
    if plane is not None:
        target = _SINGLE_SLICE_AXCODES[plane]
    return ornt_transform(source, axcodes2ornt(target))


def _single_slice_world_axis(source_ornt: np.ndarray, shape: Sequence[int] | None) -> int | None:
    """World axis (0 x, 1 y, 2 z) of the normal of a single-slice image, or None for a volume."""
    if shape is None:
        return None
    spatial = list(shape)[:3]
    flat = [i for i, s in enumerate(spatial) if s == 1]
    if len(flat) != 1 or min(s for i, s in enumerate(spatial) if i != flat[0]) < 2:
        return None
    return int(source_ornt[flat[0], 0])


def invert_ornt(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt``."""
    inverse = np.zeros_like(ornt)
    for axis, (target, flip) in enumerate(ornt):
        inverse[int(target)] = (axis, flip)
    return inverse


def volume_scan(
    data_xyzc: np.ndarray,
    affine: np.ndarray,
    *,
    name: str,
    source_format: str,
    modalities: tuple[str, ...],
    header: Any = None,
) -> Scan:
    """Reorient source voxels ``(X, Y, Z, C)`` to the display layout and build the Scan."""
    from nibabel.affines import voxel_sizes
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    affine = np.asarray(affine, dtype=float)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        logger.warning("Degenerate or missing affine; assuming 1 mm voxels in the display orientation")
        affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    spatial = data_xyzc.shape[:3]
    ornt = display_ornt(affine, spatial)
    lps = apply_orientation(data_xyzc, ornt)  # (W, H, D, C) in display orientation
    display = lps.transpose(3, 2, 1, 0)
    if not (display.flags.c_contiguous and display.dtype == np.float32):
        charge(display.size * 4)  # the display copy (a view when the source's order already is the display's)
    array = np.ascontiguousarray(display, dtype=np.float32)
    del lps, display
    display_affine = affine @ inv_ornt_aff(ornt, spatial)
    sizes = voxel_sizes(display_affine)
    spacing = (float(sizes[2]), float(sizes[1]), float(sizes[0]))
    meta: dict[str, Any] = {
        "ornt": ornt,
        "source_shape": tuple(int(s) for s in spatial),
        "source_affine": affine.copy(),
        "display_affine": display_affine,
        "source_axcodes": "".join(_axcodes(affine)),
    }
    plane = _single_slice_world_axis(io_orientation(affine), spatial)
    if plane is not None and plane != 2:
        meta["plane"] = _PLANES[plane]
    if header is not None:
        meta["nifti_header"] = header.copy()
    return Scan(
        array=array,
        modalities=modalities,
        spacing=spacing,
        affine=affine.copy(),
        source_format=source_format,
        name=name,
        is_2d=False,
        meta=meta,
    )


def to_display_labels(source_xyz: np.ndarray, scan: Scan) -> np.ndarray:
    """A label volume in the source grid ``(X, Y, Z)`` -> display ``(D, H, W)``, same dtype."""
    from nibabel.orientations import apply_orientation

    return np.ascontiguousarray(apply_orientation(source_xyz, scan.meta["ornt"]).transpose(2, 1, 0))


def _axcodes(affine: np.ndarray) -> tuple[str, ...]:
    import nibabel as nib

    return tuple(str(c) for c in nib.aff2axcodes(affine))
