"""Reading any MRI input into one :class:`Scan`, and writing masks back.

Layout convention (every reader produces it, every consumer relies on it):

* ``Scan.array`` is ``(C, D, H, W)`` float32: channels (modalities), slices, rows, columns.
  A 2D image is a volume of one slice (``D == 1``).
* Volumes are shown in the radiological convention: slices run inferior -> superior, row 0 is
  anterior, column 0 is the patient's right (NIfTI is reoriented to that view with nibabel's
  orientation tools, and the mask is turned back to the file's own voxel order when written).
* ``spacing`` is ``(D, H, W)`` in millimetres.

In nibabel's terms the display array, read as voxel axes ``(W, H, D)``, has axis codes
``("L", "P", "S")``; ``Scan.array[c]`` is that array transposed to ``(D, H, W)``. DICOM series are
put into the same view from their ImageOrientationPatient / ImagePositionPatient; 2D images and
stacks of 2D slices are assumed to be in it already (as radiology exports are).

One entry point, :func:`load_scan`, takes a path (file or folder), raw ``bytes`` (a browser
upload) or a list of files (a multi-file upload) and dispatches on the content:

* PNG / JPEG / TIFF images (Pillow; tifffile for TIFFs Pillow cannot decode),
* NIfTI ``.nii`` / ``.nii.gz`` (3D, or 4D with the modalities on the last axis),
* DICOM: one file, a series (folder, file list or ZIP), classic or enhanced multi-frame,
* ZIP archives of any of these, including a stack of 2D slices (the LGG ``kaggle_3m`` layout,
  ``<case>_<n>.tif`` + ``<case>_<n>_mask.tif``),
* BraTS case folders, 2015 (``Flair_subtrMeanDivStd.nii.gz`` ...), 2020 (``<case>_t1ce.nii.gz``
  ...) and 2023 (``<case>-t2f.nii.gz`` ...) naming.

Every input that cannot be used raises :class:`ScanError` with a message meant for the person
who uploaded it. Everything is read in memory, with limits checked *before* allocating
(:data:`MAX_VOXELS`, :data:`MAX_UNCOMPRESSED`, :data:`MAX_FILES`, :data:`MAX_CHANNELS`,
:data:`MIN_SIDE`); nothing is written to disk except by :func:`save_mask` when given a path.
All uploads read at once share one decode budget in bytes (:mod:`.budget`); an upload that finds
it full waits a bounded time and then raises :class:`DecodeBusy` (not a ScanError: retry later).

The package holds one reader per format behind a small registry (:mod:`.registry`, the way MONAI's
``LoadImage`` picks an ImageReader): :mod:`.images` (PNG / JPEG / TIFF), :mod:`.lgg` (stacks of
slices with masks), :mod:`.nifti`, :mod:`.brats`, :mod:`.dicom` (pixels in :mod:`.dicom_pixels`),
:mod:`.archive` (ZIP, gzip). :mod:`.budget` is the decode budget all uploads share in bytes.
:mod:`.limits` holds what every reader shares (the error type, the size limits, bounded
decompression, the final checks), :mod:`.scan` the :class:`Scan` dataclass, :mod:`.files` the
collection of an upload into in-memory files, :mod:`.detect` the format sniffing,
:mod:`.orientation` the display layout, and :mod:`.masks` the writing of masks back.
Adding a format: one module with a reader class, and one line in ``registry.READERS``. The limits are read from
:mod:`.limits` when used, so lower them there (``seg_core.scans.limits.MAX_FILES``), not here.

Example:
    >>> scan = load_scan("brats_2013_pat0001_1/")  # doctest: +SKIP
    >>> scan.array.shape, scan.modalities  # doctest: +SKIP
    ((2, 155, 240, 240), ('t1c', 'flair'))
    >>> save_mask(scan, scan.label, "pat0001_mask.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .budget import DecodeBusy, decode_budget, reservation, set_decode_budget
from .files import collect_source
from .limits import (
    MAX_CHANNELS,
    MAX_FILES,
    MAX_UNCOMPRESSED,
    MAX_VOXELS,
    MIN_SIDE,
    SUPPORTED_FORMATS,
    ScanError,
    validate_scan,
)
from .masks import mask_to_source, save_mask
from .registry import read_files
from .scan import CANONICAL_MODALITIES, DISPLAY_AXCODES, LGG_RGB_MODALITIES, UNSPECIFIED, Scan, describe

__all__ = [
    "CANONICAL_MODALITIES",
    "DISPLAY_AXCODES",
    "LGG_RGB_MODALITIES",
    "MAX_CHANNELS",
    "MAX_FILES",
    "MAX_UNCOMPRESSED",
    "MAX_VOXELS",
    "MIN_SIDE",
    "SUPPORTED_FORMATS",
    "UNSPECIFIED",
    "DecodeBusy",
    "Scan",
    "ScanError",
    "decode_budget",
    "describe",
    "load_scan",
    "mask_to_source",
    "save_mask",
    "set_decode_budget",
]


logger = logging.getLogger(__name__)


def load_scan(source: Any, *, name: str | None = None, modalities: Sequence[str] | None = None) -> Scan:
    """Read any supported MRI input into a :class:`Scan` in the display convention.

    Args:
        source: one of
            * a path (``str`` / ``os.PathLike``) to a file or a folder (a DICOM series, a BraTS case,
              a folder of 2D slices);
            * ``bytes`` of one file, as a browser upload gives them (``name`` is its file name);
            * a list of files: ``(filename, bytes)`` pairs and/or paths (a multi-file upload);
            * an object with ``.name`` and ``.getvalue()`` (e.g. a Streamlit ``UploadedFile``), alone or in a list.
        name: file name of ``bytes`` (its extension helps detect the format; the content is sniffed
            too), or the display name of a multi-file upload.
        modalities: channel names overriding what the reader found, one per channel
            (aliases such as ``"t1ce"`` or ``"t2f"`` are mapped to the canonical names).

    Returns:
        The scan: ``array`` ``(C, D, H, W)`` float32 with raw intensities (not normalised).

    Raises:
        DecodeBusy: other uploads hold the process-wide decode budget (:mod:`.budget`) and none of it
            came free within the wait; the file may be fine, so retry after ``retry_after_s``.
        ScanError: the input is empty, damaged, too large, too small, of an unsupported kind,
            holds non-finite values, or is unsafe (e.g. a ZIP with ``../`` paths). Nothing else:
            an unforeseen failure inside a decoder is reported as a damaged file too (its
            ``unexpected`` attribute is then True, and a warning names where it happened).
    """
    try:
        files, default_name, from_archive = collect_source(source, name)
        if not files:
            raise ScanError(f"No files found in {default_name or 'the upload'}. Supported: {SUPPORTED_FORMATS}.")
        # Every byte the readers inflate or decode is charged to one reservation of the process-wide
        # decode budget, released when the scan is read (or refused).
        with reservation(f"'{default_name}'" if default_name else "The upload"):
            scan = read_files(files, case_name=default_name, from_archive=from_archive)
            return validate_scan(scan, modalities)
    except (ScanError, DecodeBusy):
        raise
    except MemoryError:
        raise ScanError("The upload is too large to read in the memory available; upload one scan at a time.") from None
    except Exception as exc:
        # A decoder failed in a way no check foresaw: still a clear answer for the uploader. Only the
        # exception's type and place are logged, never its message (it could quote header values).
        frames = traceback.extract_tb(exc.__traceback__)
        ours = [f for f in frames if Path(f.filename).parent == Path(__file__).parent]
        frame = (ours or frames)[-1]
        logger.warning(
            "Unexpected %s in %s (%s:%d) while reading an upload; reported as a damaged file",
            type(exc).__name__,
            frame.name,
            Path(frame.filename).name,
            frame.lineno or 0,
        )
        error = ScanError(
            f"The upload could not be read ({type(exc).__name__} inside the decoder); the file may be damaged, or of a "
            f"variant this app cannot read. Supported: {SUPPORTED_FORMATS}."
        )
        error.unexpected = True  # type: ignore[attr-defined]
        raise error from None
