"""Writing masks back: to the source file's voxel order, as NIfTI (with the source header) or PNG."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np

from .nifti import nifti_image_class
from .orientation import display_ornt, invert_ornt
from .scan import Scan

logger = logging.getLogger(__name__)


def mask_to_source(scan: Scan, mask: np.ndarray) -> np.ndarray:
    """Turn a mask from the display layout back to the source file's voxel order.

    Args:
        scan: the scan the mask was computed on.
        mask: ``(D, H, W)`` array in the display layout of ``scan``.

    Returns:
        For a 2D image (``scan.is_2d``), the ``(H, W)`` mask. Otherwise the mask in the voxel order
        that ``scan.affine`` describes (for NIfTI, the file's own ``(X, Y, Z)`` axes), same dtype.

    Raises:
        ValueError: the mask's shape is not ``scan.shape``.
    """
    mask = _with_scan_shape(scan, mask)
    if scan.is_2d:
        return mask[0]
    from nibabel.orientations import apply_orientation

    ornt = scan.meta.get("ornt")
    if ornt is None:
        ornt = display_ornt(scan.affine)  # a Scan built by hand: the volume convention
    inverse = invert_ornt(np.asarray(ornt))
    source = apply_orientation(mask.transpose(2, 1, 0), inverse)
    expected = scan.meta.get("source_shape")
    if expected is not None and tuple(source.shape) != tuple(expected):
        raise ValueError(f"cannot map the mask back: got {source.shape}, the source grid is {tuple(expected)}")
    return np.ascontiguousarray(source)


def save_mask(scan: Scan, mask: np.ndarray, path: str | os.PathLike[str] | None = None, *, fmt: str | None = None) -> bytes:
    """Encode a mask for ``scan`` as NIfTI or PNG, and write it to ``path`` when given.

    NIfTI masks are uint8 in the source file's voxel order with the source affine (and, for a
    NIfTI or BraTS input, a copy of its header), so they overlay the original in any viewer.
    PNG masks (2D inputs) are 0/255.

    Args:
        scan: the scan the mask belongs to.
        mask: ``(D, H, W)`` integer or boolean array in the display layout, values 0..255.
        path: file to write; its suffix (``.png``, ``.nii``, ``.nii.gz``) picks the format when ``fmt`` is None.
        fmt: ``"nifti"`` (gzip-compressed unless ``path`` ends in ``.nii``) or ``"png"``.
            Default: from ``path``, else PNG for 2D inputs and NIfTI for volumes.

    Returns:
        The encoded file's bytes (what was written to ``path``).

    Raises:
        ValueError: unknown format, a suffix that contradicts ``fmt``, a volume asked as PNG,
            or a mask of the wrong shape or value range.
    """
    mask = _check_mask(scan, mask)
    suffix_fmt = None
    gzip_out = True
    if path is not None:
        lower = str(path).lower()
        if lower.endswith(".png"):
            suffix_fmt = "png"
        elif lower.endswith((".nii.gz", ".nii")):
            suffix_fmt = "nifti"
            gzip_out = lower.endswith(".gz")
        elif fmt is None:
            raise ValueError(f"mask path {str(path)!r} must end in .nii.gz, .nii or .png (or pass fmt=)")
    if fmt is None:
        fmt = suffix_fmt or ("png" if scan.is_2d else "nifti")
    fmt = fmt.lower()
    if fmt not in ("png", "nifti"):
        raise ValueError(f"unknown mask format {fmt!r}; choose 'nifti' or 'png'")
    if suffix_fmt is not None and suffix_fmt != fmt:
        raise ValueError(f"path {str(path)!r} does not match format {fmt!r}")
    if fmt == "png":
        data = _encode_png_mask(scan, mask)
    else:
        data = _encode_nifti_mask(scan, mask, gzip_out=gzip_out)
    if path is not None:
        Path(path).write_bytes(data)
        logger.info("Wrote a %s mask (%d bytes)", fmt, len(data))
    return data


def _with_scan_shape(scan: Scan, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(scan.shape):
        raise ValueError(f"mask has shape {mask.shape}, expected the scan's (D, H, W) = {tuple(scan.shape)}")
    return mask


def _check_mask(scan: Scan, mask: np.ndarray) -> np.ndarray:
    """The mask as uint8 labels; refuses probabilities and values outside 0..255."""
    mask = _with_scan_shape(scan, mask)
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if mask.dtype.kind not in "iu" and not (mask.dtype.kind == "f" and np.array_equal(mask, np.round(mask))):
        raise ValueError(f"mask must hold integer labels (got {mask.dtype}); threshold probabilities first")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError("mask values must be within 0..255")
    return mask.astype(np.uint8)


def _encode_png_mask(scan: Scan, mask: np.ndarray) -> bytes:
    from PIL import Image

    if mask.shape[0] != 1:
        raise ValueError(f"a PNG holds one slice but the mask has {mask.shape[0]}; save volumes as NIfTI (.nii.gz)")
    buf = io.BytesIO()
    Image.fromarray(np.where(mask[0] > 0, 255, 0).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _encode_nifti_mask(scan: Scan, mask: np.ndarray, *, gzip_out: bool) -> bytes:
    import gzip

    import nibabel as nib

    if scan.is_2d:
        source = mask.transpose(2, 1, 0)  # (W, H, 1) with the image's display affine
    else:
        source = mask_to_source(scan, mask)
    source = np.ascontiguousarray(source, dtype=np.uint8)
    affine = np.asarray(scan.affine, dtype=float)
    header = scan.meta.get("nifti_header")
    if header is not None:
        klass = nifti_image_class(header)
        image = klass(source, affine, header=header.copy())
        if np.allclose(header.get_best_affine(), affine, atol=1e-4):
            # Same qform and sform (and codes) as the source, so every viewer overlays it identically.
            image.set_qform(header.get_qform(), int(header["qform_code"]))
            image.set_sform(header.get_sform(), int(header["sform_code"]))
        else:  # the reader replaced a degenerate affine
            image.set_qform(None, 0)
            image.set_sform(affine, 2)
    else:
        image = nib.Nifti1Image(source, affine)
        code = 1 if scan.source_format == "dicom" else 2
        image.set_qform(affine, code)
        image.set_sform(affine, code)
    hdr = image.header
    hdr.extensions.clear()  # extensions can carry scanner or patient details; a mask needs none
    hdr.set_data_dtype(np.uint8)
    hdr.set_slope_inter(1.0, 0.0)
    hdr["cal_min"] = 0
    hdr["cal_max"] = float(source.max()) if source.size else 0.0
    hdr["intent_code"] = 0
    hdr["descrip"] = b"BrainSeg Studio mask"
    raw = image.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if gzip_out else raw
