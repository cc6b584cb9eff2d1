"""DICOM pixel data: decoded per dataset (pydicom) into one float32 volume, within the decode budget.

Split from :mod:`.dicom` (which groups, sorts and places the frames) to keep each module short.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import limits
from .budget import charge
from .limits import ScanError, exception_summary


def decode_frames(frames: list[Any]) -> np.ndarray:
    """Decode pixel data (each dataset once) and apply RescaleSlope / RescaleIntercept per frame.

    The frames are written into one float32 volume allocated (and charged to the decode budget) up
    front, and each dataset's decoded pixels are dropped after its last frame, so the peak is the
    volume plus one dataset's pixels rather than every frame twice.
    """
    rows, cols = int(frames[0].dataset.Rows), int(frames[0].dataset.Columns)
    charge(len(frames) * rows * cols * 4)
    out = np.empty((len(frames), rows, cols), dtype=np.float32)
    uses_left: dict[int, int] = {}
    for fr in frames:
        uses_left[id(fr.dataset)] = uses_left.get(id(fr.dataset), 0) + 1
    cache: dict[int, np.ndarray] = {}
    for slot, fr in enumerate(frames):
        key = id(fr.dataset)
        if key not in cache:
            cache[key] = dicom_pixels(fr.source, fr.dataset)
        pixels = cache[key]
        image = pixels[fr.index] if fr.index is not None and pixels.ndim == 3 else pixels
        if image.ndim != 2:
            raise ScanError(f"'{fr.source}' has an unexpected pixel layout {image.shape}; only grayscale DICOM is supported.")
        if image.shape != (rows, cols):
            raise ScanError("The DICOM slices do not all have the same size; upload one series at a time.")
        np.multiply(image, np.float32(fr.slope), out=out[slot], casting="unsafe")
        out[slot] += np.float32(fr.intercept)
        uses_left[key] -= 1
        if not uses_left[key]:
            del cache[key], pixels, image
    return out


def dicom_pixels(fname: str, ds: Any) -> np.ndarray:
    from pydicom.uid import ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian  # what a preamble-less file most likely is
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        compressed = ts is not None and ts.is_compressed
    except ValueError:  # pydicom: "UID is not a transfer syntax"
        raise ScanError(
            f"'{fname}' names an unknown transfer syntax; the file is damaged or not a standard DICOM image."
        ) from None
    if compressed and not _dicom_decoder_available(ts):
        raise ScanError(
            f"'{fname}' is compressed with {ts.name}, which this installation cannot decode. Export the series "
            "uncompressed (Explicit VR Little Endian), or ask for a DICOM decoder (pylibjpeg or GDCM) to be installed."
        )
    try:
        frames = int(as_float(ds.get("NumberOfFrames")) or 1)
        declared = int(ds.Rows) * int(ds.Columns) * max(frames, 1) * int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise ScanError(f"'{fname}' has damaged image dimensions (Rows, Columns or NumberOfFrames).") from None
    if declared > limits.MAX_VOXELS:
        raise ScanError(f"'{fname}' declares {declared:,} pixel values; at most {limits.MAX_VOXELS:,} are supported.")
    bits = int(as_float(ds.get("BitsAllocated")) or 16)
    charge(declared * max(1, min(bits, 64) // 8))  # the decoded pixels, before pydicom allocates them
    try:
        # pydicom's function, not ``ds.pixel_array``: the property would keep the decoded array on the
        # dataset, so dropping it after the dataset's last frame would free nothing.
        from pydicom.pixels import pixel_array

        return np.asarray(pixel_array(ds))
    except Exception as exc:
        raise ScanError(
            f"The image data of '{fname}' could not be decoded ({exception_summary(exc)}); the file may be truncated or damaged."
        ) from None


def _dicom_decoder_available(ts: Any) -> bool:
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(ts).is_available)
    except Exception:  # unknown / private transfer syntax
        return False


def as_float(value: Any) -> float | None:
    try:
        if value is None or value == "":
            return None
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
