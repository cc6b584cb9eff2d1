"""NIfTI-1 and NIfTI-2 volumes (.nii, .nii.gz): 3D, or 4D with the modalities on the last axis.

The header is checked against the limits before any voxel is decoded; a .nii.gz is decompressed
only as far as its header says the data reaches.
"""

from __future__ import annotations

import io
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import limits
from .base import FileGroup
from .budget import charge, refund
from .detect import nifti_magic
from .files import ScanFile, strip_ext
from .limits import ScanError, exception_summary, gunzip, human_bytes
from .orientation import volume_scan
from .scan import UNSPECIFIED, Scan

#: File kinds (from detect) of the NIfTI family: read one by one here, as a case by BratsReader.
NIFTI_KINDS = frozenset({"nifti", "nifti.gz"})


class NiftiReader:
    """One NIfTI file: a 3D volume of unknown contrast, or a 4D volume with one channel per volume."""

    kinds: ClassVar[frozenset[str]] = NIFTI_KINDS
    guessed_kinds: ClassVar[frozenset[str]] = frozenset()
    what: ClassVar[str] = "NIfTI volumes"

    def can_read(self, group: FileGroup) -> bool:
        return len(group.files) == 1

    def read(self, group: FileGroup) -> Scan:
        nii = open_nifti(group.files[0])
        data = nifti_data(nii)
        channels = data.shape[3]
        modalities = (UNSPECIFIED,) if channels == 1 else tuple(f"channel{i}" for i in range(channels))
        name, header, affine, raw_charged = nii.name, nii.image.header, np.asarray(nii.image.affine, dtype=float), nii.raw_charged
        del nii  # the last reference to the inflated file: freed before the display copy is made
        refund(raw_charged)
        return volume_scan(data, affine, name=name, source_format="nifti", modalities=modalities, header=header)


@dataclass
class NiftiVolume:
    """One NIfTI file, its header parsed and checked, its voxels not yet decoded."""

    name: str
    image: Any  # nibabel Nifti1Image / Nifti2Image backed by in-memory bytes
    shape: tuple[int, int, int, int]  # (X, Y, Z, C) after dropping singleton dimensions
    raw_charged: int = 0  # bytes of the file this volume alone holds (inflated or copied), charged to the budget

    @property
    def voxels(self) -> int:
        return math.prod(self.shape)


def open_nifti(f: ScanFile, voxel_budget: int | None = None) -> NiftiVolume:
    """Parse a NIfTI header, check it against the limits, and wrap the data without decoding it.

    A .nii.gz is inflated only as far as the header says the data reaches, and that size is charged
    to the decode budget (:mod:`.budget`) before a byte is inflated.
    """
    if voxel_budget is None:  # read at call time, so a lowered limits.MAX_VOXELS applies
        voxel_budget = limits.MAX_VOXELS
    charged = 0
    if f.data.startswith(b"\x1f\x8b"):
        head = gunzip(f.data, f.basename, 4096, partial=True)
        header, shape, offset, nbytes = _nifti_layout(f.basename, head, voxel_budget)
        del head
        charged = offset + nbytes
        charge(charged)
        raw = gunzip(f.data, f.basename, offset + nbytes, partial=True, reserved=charged)
    else:
        header, shape, offset, nbytes = _nifti_layout(f.basename, f.data, voxel_budget)
        raw = f.data
    if len(raw) < offset + nbytes:
        raise ScanError(
            f"'{f.basename}' is truncated: its header promises {human_bytes(nbytes)} of image data but only "
            f"{human_bytes(max(0, len(raw) - offset))} are there. Please upload the complete file."
        )
    if len(raw) > offset + nbytes:
        charge(offset + nbytes)  # the slice below is a copy (trailing bytes of a .nii are ignored)
        charged += offset + nbytes
        raw = raw[: offset + nbytes]
    klass = nifti_image_class(header)
    try:
        image = klass.from_bytes(raw)  # wraps raw in a BytesIO: no copy
    except Exception as exc:
        raise ScanError(
            f"'{f.basename}' could not be read as NIfTI ({exception_summary(exc)}); the file may be damaged."
        ) from None
    return NiftiVolume(strip_ext(f.basename), image, shape, charged)


def nifti_image_class(header: Any) -> Any:
    import nibabel as nib

    return nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image


_NIBABEL_REPORTS = logging.getLogger(f"{__name__}.nibabel_header")
_NIBABEL_REPORTS.propagate = False
_NIBABEL_REPORTS.addHandler(logging.NullHandler())


def _nibabel_error_level() -> int:
    from nibabel import imageglobals

    return int(imageglobals.error_level)


def _nifti_layout(name: str, head: bytes, voxel_budget: int) -> tuple[Any, tuple[int, int, int, int], int, int]:
    """Read and sanity-check a NIfTI header. Returns (header, (X, Y, Z, C), data offset, data bytes)."""
    import nibabel as nib

    magic = nifti_magic(head)
    if magic is None:
        if len(head) < 348:
            raise ScanError(f"'{name}' is too short to be a NIfTI file ({len(head)} bytes); it is probably truncated.")
        raise ScanError(f"'{name}' is not a NIfTI file (its header has no NIfTI signature); it may be damaged or renamed.")
    if magic in ("pair", "analyze"):
        raise ScanError(
            f"'{name}' is an Analyze or two-file NIfTI header, which is not supported; convert it to .nii or .nii.gz."
        )
    header_class, size = (nib.Nifti1Header, 348) if magic == "nifti1" else (nib.Nifti2Header, 540)
    if len(head) < size:
        raise ScanError(f"'{name}' is truncated inside its header; please upload the complete file.")
    try:
        # Four zero bytes say "no extensions": only the fixed header is needed for the checks.
        header = header_class.from_fileobj(io.BytesIO(head[:size] + b"\x00" * 4), check=False)
        # nibabel's own checks, reported to a quiet logger: its fixes would otherwise reach stderr
        # next to the one clear error line (or a successful run's output).
        header.check_fix(logger=_NIBABEL_REPORTS, error_level=_nibabel_error_level())
        raw_shape = tuple(int(s) for s in header.get_data_shape())
        dtype = np.dtype(header.get_data_dtype())
        offset = int(header.get_data_offset())
    except Exception as exc:
        raise ScanError(f"The header of '{name}' is damaged ({exception_summary(exc)}); it cannot be read as NIfTI.") from None
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise ScanError(
            f"'{name}' stores {_dtype_words(dtype)} voxels; only grayscale intensity volumes (integer or float) are supported."
        )
    if not raw_shape:
        raise ScanError(f"The header of '{name}' is damaged (it gives no image dimensions); it cannot be read as NIfTI.")
    if any(s <= 0 for s in raw_shape):
        raise ScanError(f"'{name}' has an empty dimension (shape {raw_shape}); it holds no image.")
    if offset < size:
        raise ScanError(f"The header of '{name}' is damaged (image data offset {offset}); it cannot be read as NIfTI.")
    if len(raw_shape) == 1:
        raise ScanError(f"'{name}' is one-dimensional (shape {raw_shape}); an image needs at least two dimensions.")
    spatial = (raw_shape + (1, 1))[:3]
    extra = [s for s in raw_shape[3:] if s != 1]
    if len(extra) > 1:
        raise ScanError(
            f"'{name}' has {len(raw_shape)} dimensions (shape {raw_shape}); only 3D volumes and 4D volumes "
            f"with up to {limits.MAX_CHANNELS} modalities on the last axis are supported."
        )
    channels = extra[0] if extra else 1
    if channels > limits.MAX_CHANNELS:
        raise ScanError(
            f"'{name}' holds {channels} volumes (e.g. a functional or diffusion series); this app expects a structural "
            f"scan with at most {limits.MAX_CHANNELS} modalities."
        )
    shape = (*spatial, channels)
    voxels = math.prod(shape)
    if voxels > voxel_budget:
        raise ScanError(
            f"'{name}' claims {voxels:,} voxels (shape {raw_shape}); at most {limits.MAX_VOXELS:,} are supported. "
            "The file is either damaged or far larger than an MRI scan."
        )
    nbytes = math.prod(raw_shape) * dtype.itemsize
    if offset + nbytes > limits.MAX_UNCOMPRESSED:
        raise ScanError(
            f"The header of '{name}' is damaged (image data said to start at byte {offset:,}); it cannot be read as NIfTI."
        )
    return header, shape, offset, nbytes  # type: ignore[return-value]


def nifti_data(nii: NiftiVolume) -> np.ndarray:
    """Decoded intensities ``(X, Y, Z, C)`` float32 (NIfTI scaling applied).

    The bytes are charged to the decode budget before nibabel allocates them: its copy of the raw
    data, then the float32 array where one is made.
    """
    proxy = nii.image.dataobj
    scaled = getattr(proxy, "slope", 1.0) != 1.0 or getattr(proxy, "inter", 0.0) != 0.0
    # nibabel reads the raw voxels into a new buffer, and scales them into a float64 one when asked.
    charge(nii.voxels * (np.dtype(nii.image.get_data_dtype()).itemsize + (8 if scaled else 0)))
    try:
        data = np.asanyarray(proxy)
    except Exception as exc:
        raise ScanError(f"The image data of '{nii.name}' could not be decoded ({exception_summary(exc)}).") from None
    if data.size != nii.voxels:
        raise ScanError(f"The image data of '{nii.name}' holds {data.size:,} values, not the {nii.voxels:,} its header says.")
    if data.dtype != np.float32:
        charge(nii.voxels * 4)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(data, dtype=np.float32).reshape(nii.shape)


def _dtype_words(dtype: np.dtype) -> str:
    if dtype.fields is not None:
        return "colour (RGB)"
    if dtype.kind == "c":
        return "complex-valued"
    return str(dtype)
