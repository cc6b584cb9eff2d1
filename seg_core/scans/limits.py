"""What every reader shares: the error type, the size limits, bounded decompression, the final checks.

Limits are checked *before* allocating: from a header, a ZIP's directory, or while decompressing.
Readers read them as ``limits.MAX_...`` at call time, so a test can lower one with
``monkeypatch.setattr(seg_core.scans.limits, "MAX_UNCOMPRESSED", ...)``.
"""

from __future__ import annotations

import io
import logging
import zlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .scan import Scan, canonical_modality

logger = logging.getLogger(__name__)

#: Most voxels (C * D * H * W) one scan may hold: 64 Mi voxels is 256 MiB as float32, ample for a
#: four-modality 240x240x155 BraTS case (36 Mi) or a 512x512x200 series, and checked from the
#: header before any pixel data is decoded.
MAX_VOXELS = 64 * 1024 * 1024
#: Most channels (modalities) a scan may have; a 4D NIfTI with more volumes is a time series.
MAX_CHANNELS = 8
#: Smallest height and width, in pixels, worth segmenting.
MIN_SIDE = 16
#: Most bytes an upload may expand to (ZIP members in total, a gzip stream, a folder's files).
MAX_UNCOMPRESSED = 1024 * 1024 * 1024
#: Most files one upload (ZIP, folder or file list) may contain.
MAX_FILES = 4096

SUPPORTED_FORMATS = (
    "PNG, JPEG and TIFF images; NIfTI volumes (.nii, .nii.gz); DICOM files or series (.dcm, a folder, or many files); "
    "BraTS case folders; and ZIP archives of any of these"
)

#: Most bytes produced per zlib call: a bomb never gets one huge allocation, only up to the limit.
GUNZIP_CHUNK = 16 * 1024 * 1024


class ScanError(ValueError):
    """An input that cannot be read as MRI; the message is written for the person who uploaded it."""


class UnpackTally:
    """Bytes unpacked so far from the archives and gzip files of one multi-file upload."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, nbytes: int) -> None:
        self.total += nbytes
        if self.total > MAX_UNCOMPRESSED:
            raise ScanError(f"The upload unpacks to more than {human_bytes(MAX_UNCOMPRESSED)}; upload one case at a time.")


def gunzip(data: bytes, name: str, limit: int, *, partial: bool = False, reserved: int = 0) -> bytes:
    """Decompress gzip data (all members) without ever holding more than ``limit`` bytes.

    The output is counted as it is produced, never taken from the gzip trailer's declared size, and
    charged to the upload's decode budget (:mod:`.budget`) chunk by chunk, beyond the ``reserved``
    bytes the caller charged already from a header.

    Args:
        data: the compressed bytes.
        name: file name for messages.
        limit: most bytes to produce.
        partial: return what was decompressed when the limit is reached or the stream ends early
            (to peek at a header, or when the caller checks the length itself) instead of raising.
        reserved: bytes of this output already charged to the decode budget.
    """
    from .budget import charge  # budget imports ScanError from here: imported when called

    # A BytesIO grows in place and getvalue() hands over its buffer without a copy, so the peak is
    # the output plus one chunk (a bytearray would need a full copy to become bytes).
    out = io.BytesIO()
    produced = 0
    buf = data
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not d.eof:
            try:
                chunk = d.decompress(buf, min(limit + 1 - produced, GUNZIP_CHUNK))
            except zlib.error as exc:
                raise ScanError(f"'{name}' is a damaged gzip file ({exc}); please export or download it again.") from None
            produced += len(chunk)
            if produced > limit:
                if partial:
                    out.write(chunk[: len(chunk) - (produced - limit)])
                    return out.getvalue()
                raise ScanError(
                    f"'{name}' decompresses to more than {human_bytes(limit)}, more than any scan this app reads; it was refused."
                )
            charge(min(len(chunk), produced - reserved))
            out.write(chunk)
            buf = d.unconsumed_tail
            if not buf and not chunk:
                break
            del chunk
        if not d.eof:
            if partial:
                return out.getvalue()
            raise ScanError(f"'{name}' is truncated: the compressed data ends early. Please upload the complete file.")
        rest = d.unused_data
        if not rest.startswith(b"\x1f\x8b"):
            # Trailing zeros are common padding; other trailing bytes are ignored like gzip tools do.
            break
        buf = rest
    return out.getvalue()


def validate_scan(scan: Scan, modalities: Sequence[str] | None) -> Scan:
    """Checks every scan must pass, whatever the reader: channels, size, finite values, names."""
    c, d, h, w = scan.array.shape
    if c > MAX_CHANNELS:
        raise ScanError(f"'{scan.name}' has {c} channels; at most {MAX_CHANNELS} modalities are supported.")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ScanError(
            f"'{scan.name}' is only {w}x{h} pixels per slice (after orientation); at least {MIN_SIDE}x{MIN_SIDE} "
            "are needed to segment anything."
        )
    # Slice by slice: a whole-volume mask would be one more byte per voxel at the peak.
    planes = scan.array.reshape(-1, h, w)
    if not all(np.isfinite(plane).all() for plane in planes):
        bad = sum(int(plane.size - np.count_nonzero(np.isfinite(plane))) for plane in planes)
        raise ScanError(
            f"'{scan.name}' contains {bad:,} voxel(s) that are not numbers (NaN or infinite); the file may be damaged "
            "or be a processed map. Replace them (e.g. with 0) and upload again."
        )
    if modalities is not None:
        names = tuple(canonical_modality(m) for m in modalities)
        if len(names) != c:
            raise ScanError(f"{len(names)} modality names were given ({', '.join(names)}) but '{scan.name}' has {c} channel(s).")
        if len(set(names)) != len(names):
            raise ScanError(f"Modality names must be different, got {', '.join(names)}.")
        scan = replace(scan, modalities=names)
    logger.info("Loaded a %s scan: %d channel(s), %dx%dx%d voxels", scan.source_format, c, d, h, w)
    return scan


def human_bytes(nbytes: int) -> str:
    """``1536`` -> ``"1.5 KiB"``, for messages."""
    value = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def exception_summary(exc: BaseException) -> str:
    """The first line of an exception's message (at most 160 characters), or its type's name."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
