"""2D images: PNG, JPEG and TIFF (Pillow; tifffile for TIFFs Pillow cannot decode).

One image is a scan of one slice (``D == 1``); a multi-page TIFF is a stack of slices. Images are
taken to be in the display orientation already, as radiology exports are. An RGB image whose
channels differ is read as three modalities (:data:`~seg_core.scans.scan.LGG_RGB_MODALITIES`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import limits
from .base import FileGroup
from .budget import DecodeBusy, charge
from .detect import IMAGE_KINDS, image_kind
from .files import ScanFile, strip_ext
from .limits import ScanError, exception_summary
from .scan import LGG_RGB_MODALITIES, UNSPECIFIED, Scan, add_note

logger = logging.getLogger(__name__)

#: A ``<image>_mask.<ext>`` file is the ground truth of ``<image>.<ext>`` (the LGG kaggle_3m layout).
MASK_STEM = re.compile(r"[_\-. ]mask$", re.IGNORECASE)


class ImageReader:
    """One PNG, JPEG or TIFF file (a multi-page TIFF is a stack of slices)."""

    kinds: ClassVar[frozenset[str]] = frozenset(IMAGE_KINDS)
    guessed_kinds: ClassVar[frozenset[str]] = frozenset()
    what: ClassVar[str] = "2D images"

    def can_read(self, group: FileGroup) -> bool:
        return len(group.files) == 1 and not MASK_STEM.search(strip_ext(group.files[0].basename))

    def read(self, group: FileGroup) -> Scan:
        return read_single_image(group.files[0])


#: A TCGA-LGG ``kaggle_3m`` slice: ``TCGA_<institution>_<patient>_<date>_<n>``. Its three channels are
#: pre-contrast, FLAIR and post-contrast even where the release repeated one sequence for a missing
#: one (TCGA_DU_7013: all three equal), so such a case is not collapsed to gray.
LGG_SLICE_NAME = re.compile(r"^TCGA_[A-Z0-9]{2}_[A-Z0-9]{4}_\d{8}_\d+$", re.IGNORECASE)


def read_single_image(f: ScanFile) -> Scan:
    kind = image_kind(f)
    pages = decode_image(f, kind)
    if len(pages) > 1:
        # A multi-page TIFF is a stack of slices.
        return _read_tiff_pages(f, pages)
    array, modalities = stack_pages(pages, keep_colour=bool(LGG_SLICE_NAME.match(strip_ext(f.basename))))
    return Scan(
        array=np.ascontiguousarray(array, dtype=np.float32),
        modalities=modalities,
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
        source_format=kind,
        name=strip_ext(f.basename),
        is_2d=True,
        meta=image_meta(array.shape[1:]),
    )


def _read_tiff_pages(f: ScanFile, pages: list[Page]) -> Scan:
    shapes = {p.pixels.shape[:2] for p in pages}
    if len(shapes) > 1:
        raise ScanError(f"The pages of '{f.basename}' differ in size; a multi-page TIFF must be a stack of equal slices.")
    array, modalities = stack_pages(pages)
    scan = Scan(
        array=np.ascontiguousarray(array, dtype=np.float32),
        modalities=modalities,
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
        source_format="tiff",
        name=strip_ext(f.basename),
        is_2d=False,
        meta=image_meta(array.shape[1:]),
    )
    add_note(scan, "slice spacing not stored in 2D images; assumed 1 mm")
    return scan


def stack_pages(pages: list[Page], keep_colour: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    """Pages of equal size -> ``(C, D, H, W)`` float32: one gray channel, or three LGG channels.

    Colour pages whose channels are equal are read as one gray channel, unless ``keep_colour``
    (an LGG case by its file names, whose channels are sequences even where they repeat).

    The values are counted again, now that the decoded pages say whether they are colour, against
    :data:`~.limits.MAX_VOXELS`, and charged to the decode budget before the float32 copies are made.
    """
    height, width = pages[0].pixels.shape[:2]
    gray = not (keep_colour and all(p.pixels.shape[2] == 3 for p in pages)) and all(p.gray_equivalent for p in pages)
    values = len(pages) * height * width * (1 if gray else 3)
    if values > limits.MAX_VOXELS:
        raise ScanError(
            f"The image(s) hold {values:,} values ({len(pages)} of {width}x{height} pixels"
            f"{'' if gray else ' x 3 colour channels'}); at most {limits.MAX_VOXELS:,} are supported."
        )
    charge(values * 4 * 2)  # one float32 copy per page, then the stacked volume
    if gray:
        return np.stack([p.gray() for p in pages])[None], (UNSPECIFIED,)
    rgb = [p.pixels if p.pixels.shape[2] == 3 else np.repeat(p.pixels, 3, axis=2) for p in pages]
    return np.stack(rgb).astype(np.float32).transpose(3, 0, 1, 2), LGG_RGB_MODALITIES


def image_meta(shape_dhw: tuple[int, ...]) -> dict[str, Any]:
    # Images are taken to be in the display orientation already: identity transform.
    return {
        "ornt": np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]),
        "source_shape": (int(shape_dhw[2]), int(shape_dhw[1]), int(shape_dhw[0])),
        "spacing_known": False,
    }


@dataclass
class Page:
    pixels: np.ndarray  # (H, W, K) raw values, K in {1, 3}
    kind: str  # png | jpeg | tiff

    @property
    def gray_equivalent(self) -> bool:
        """True when a 3-channel page carries one grayscale image (equal channels)."""
        if self.pixels.shape[2] == 1:
            return True
        p = self.pixels
        if self.kind == "jpeg":
            # JPEG chroma rounding can make the channels of a gray image differ by a few levels.
            a = p.astype(np.int32)
            return bool(np.abs(a[..., 0] - a[..., 1]).max() <= 3 and np.abs(a[..., 0] - a[..., 2]).max() <= 3)
        return bool(np.array_equal(p[..., 0], p[..., 1]) and np.array_equal(p[..., 0], p[..., 2]))

    def gray(self) -> np.ndarray:
        """(H, W) float32."""
        if self.pixels.shape[2] == 1:
            return self.pixels[..., 0].astype(np.float32)
        if self.kind == "jpeg":
            return self.pixels.astype(np.float32).mean(axis=2)
        return self.pixels[..., 0].astype(np.float32)


def decode_image(f: ScanFile, kind: str, voxel_budget: int | None = None) -> list[Page]:
    """Decode all pages of a PNG / JPEG / TIFF file; checks size before decoding pixels."""
    if voxel_budget is None:  # read at call time, so a lowered limits.MAX_VOXELS applies
        voxel_budget = limits.MAX_VOXELS
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(f.data), formats=[kind.upper()])
        width, height = im.size
        pages = int(getattr(im, "n_frames", 1) or 1) if kind == "tiff" else 1
    except Image.DecompressionBombError:
        raise ScanError(f"'{f.basename}' claims an enormous image size; it was refused.") from None
    except Exception as exc:
        reason = f"is not a readable {kind.upper()} image ({exception_summary(exc)}); it may be damaged or truncated."
        return _tiff_fallback_or_fail(f, kind, voxel_budget, exc, reason)
    channels = 1 if im.mode in _GRAY_MODES or im.mode.startswith("I;16") else 3
    check_image_size(f.basename, width, height, pages, voxel_budget, channels)
    # Pillow's decoded pages (up to 4 bytes a pixel for RGBA, palette and CMYK conversions) and their
    # NumPy copies, charged before decoding; the float32 arrays are charged where they are made.
    charge(width * height * pages * (4 + channels * _itemsize(im.mode)))
    if kind == "tiff" and im.mode in _EIGHT_BIT_MODES and max(_tiff_bits(im), default=8) > 8:
        # Pillow reads e.g. 16-bit RGB TIFFs as 8-bit RGB, silently dropping precision: use tifffile.
        return _decode_tiff_fallback(f, voxel_budget, _UnsupportedMode(f"{im.mode} with more than 8 bits per sample"))
    out: list[Page] = []
    try:
        for i in range(pages):
            im.seek(i)
            out.append(Page(_pil_pixels(im), kind))
    except _UnsupportedMode as exc:
        reason = f"uses the pixel format {exc}, which is not supported; save it as 8/16-bit grayscale or RGB."
        return _tiff_fallback_or_fail(f, kind, voxel_budget, exc, reason)
    except Exception as exc:
        reason = f"could not be decoded ({exception_summary(exc)}); it may be damaged or truncated."
        return _tiff_fallback_or_fail(f, kind, voxel_budget, exc, reason)
    return out


def _tiff_fallback_or_fail(f: ScanFile, kind: str, voxel_budget: int, exc: Exception, reason: str) -> list[Page]:
    """What Pillow cannot decode: a TIFF gets a second chance with tifffile, anything else is refused."""
    if kind == "tiff":
        return _decode_tiff_fallback(f, voxel_budget, exc)
    raise ScanError(f"'{f.basename}' {reason}") from None


#: Pillow modes read as one channel (alpha dropped); every other mode becomes RGB.
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F"}


def _itemsize(mode: str) -> int:
    """Bytes per sample of the NumPy array a Pillow mode gives."""
    return 4 if mode in ("I", "F") else 2 if mode.startswith("I;16") else 1


_EIGHT_BIT_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"}


def _tiff_bits(im: Any) -> tuple[int, ...]:
    try:
        bits = im.tag_v2.get(258, ())
        return tuple(int(b) for b in (bits if isinstance(bits, tuple | list) else (bits,)))
    except Exception:  # no or odd BitsPerSample tag: trust Pillow
        return ()


class _UnsupportedMode(Exception):
    """A Pillow mode this module does not convert (TIFFs then go to tifffile)."""


def _pil_pixels(im: Any) -> np.ndarray:
    """Pillow image -> (H, W, K) raw values with K in {1, 3}: alpha dropped, palette/CMYK to RGB."""
    mode = im.mode
    if mode == "1":
        im = im.convert("L")
    elif mode in ("LA", "La"):
        im = im.getchannel(0)
    elif mode in ("P", "PA"):
        im = im.convert("RGBA").convert("RGB")  # via RGBA: palette transparency, then alpha dropped
    elif mode in ("RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode not in ("L", "I", "F", "RGB") and not mode.startswith("I;16"):
        raise _UnsupportedMode(mode)
    arr = np.asarray(im)
    if arr.ndim == 2:
        arr = arr[..., None]
    return arr


def _decode_tiff_fallback(f: ScanFile, voxel_budget: int, first_error: Exception) -> list[Page]:
    """TIFFs Pillow cannot decode (e.g. 16-bit RGB, float multi-sample) via tifffile."""
    try:
        import tifffile

        with _quiet_logger("tifffile"), tifffile.TiffFile(io.BytesIO(f.data)) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            if math.prod(shape) > voxel_budget:
                raise ScanError(
                    f"'{f.basename}' has {math.prod(shape):,} values (shape {shape}); at most {limits.MAX_VOXELS:,} are supported."
                )
            charge(math.prod(shape) * np.dtype(series.dtype).itemsize)
            arr = np.asarray(series.asarray())
    except (ScanError, DecodeBusy):
        raise
    except Exception as exc:
        raise ScanError(
            f"'{f.basename}' is not a readable TIFF image ({exception_summary(first_error)}; {exception_summary(exc)}); it may be damaged or use an unsupported compression."
        ) from None
    if "Y" not in axes or "X" not in axes or arr.ndim < 2:
        raise ScanError(f"'{f.basename}' has an unsupported TIFF layout (axes {axes}).")
    if arr.size == 0 or arr.ndim != len(axes):
        raise ScanError(f"'{f.basename}' holds no readable pixels (shape {arr.shape}); it may be damaged or truncated.")
    samples = arr.shape[axes.index("S")] if "S" in axes else 1
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)
    else:
        arr = arr[..., None]
    height, width = arr.shape[-3], arr.shape[-2]
    arr = arr.reshape(-1, height, width, samples)
    check_image_size(f.basename, width, height, arr.shape[0], voxel_budget, 1 if samples <= 2 else 3)
    if samples == 2:
        arr = arr[..., :1]  # gray + alpha
    elif samples == 4:
        arr = arr[..., :3]  # RGB + alpha
    elif samples not in (1, 3):
        raise ScanError(f"'{f.basename}' has {samples} samples per pixel; only grayscale and RGB images are supported.")
    return [Page(np.ascontiguousarray(page), "tiff") for page in arr]


class _ToDebug(logging.Filter):
    """Re-log another library's records at DEBUG under this module's logger, and drop the original."""

    def filter(self, record: logging.LogRecord) -> bool:
        logger.debug("%s: %s", record.name, record.getMessage())
        return False


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Keep a decoder's complaints about a damaged file (e.g. tifffile's) off stderr: the ScanError says it."""
    target, quiet = logging.getLogger(name), _ToDebug()
    target.addFilter(quiet)
    try:
        yield
    finally:
        target.removeFilter(quiet)


def check_image_size(name: str, width: int, height: int, pages: int, voxel_budget: int, channels: int = 1) -> None:
    """The size limits, from the header: the values counted are the ones the scan will hold.

    ``channels`` is 1 for a grayscale image, 3 for a colour one (read as three modalities unless its
    channels turn out equal); ``voxel_budget`` is what is left of :data:`~.limits.MAX_VOXELS` for
    this file (less than all of it for a slice of a stack).
    """
    if width < limits.MIN_SIDE or height < limits.MIN_SIDE:
        raise ScanError(
            f"'{name}' is only {width}x{height} pixels; at least {limits.MIN_SIDE}x{limits.MIN_SIDE} are needed to segment anything."
        )
    values = width * height * pages * channels
    if values <= voxel_budget:
        return
    colour = " x 3 colour channels" if channels == 3 else ""
    size = f"{width}x{height} pixels x {pages} page(s){colour} = {values:,} values"
    if voxel_budget < limits.MAX_VOXELS:
        raise ScanError(
            f"The slices together are too large: '{name}' ({size}) would take them past the {limits.MAX_VOXELS:,} "
            f"values supported ({max(voxel_budget, 0):,} were left); upload one case at a time."
        )
    raise ScanError(f"'{name}' is {size}, too large; at most {limits.MAX_VOXELS:,} are supported.")
