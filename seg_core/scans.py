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

Example:
    >>> scan = load_scan("brats_2013_pat0001_1/")  # doctest: +SKIP
    >>> scan.array.shape, scan.modalities  # doctest: +SKIP
    ((2, 155, 240, 240), ('t1c', 'flair'))
    >>> save_mask(scan, scan.label, "pat0001_mask.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import re
import stat
import struct
import traceback
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

__all__ = [
    "CANONICAL_MODALITIES",
    "LGG_RGB_MODALITIES",
    "MAX_CHANNELS",
    "MAX_FILES",
    "MAX_UNCOMPRESSED",
    "MAX_VOXELS",
    "MIN_SIDE",
    "SUPPORTED_FORMATS",
    "UNSPECIFIED",
    "Scan",
    "ScanError",
    "describe",
    "load_scan",
    "mask_to_source",
    "save_mask",
]

logger = logging.getLogger(__name__)

CANONICAL_MODALITIES = ("t1", "t1c", "t2", "flair")
UNSPECIFIED = "unspecified"
#: Channel names of an RGB slice whose channels differ: the LGG kaggle_3m convention
#: (pre-contrast, FLAIR, post-contrast), in the file's R, G, B order.
LGG_RGB_MODALITIES = ("t1", "flair", "t1c")
#: nibabel axis codes of the display array read as voxel axes (W, H, D).
DISPLAY_AXCODES = ("L", "P", "S")

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

_MODALITY_ALIASES = {
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
_LABEL_TOKENS = {"seg", "otmulticlass", "label", "labels", "mask", "gt", "truth"}
_MASK_STEM = re.compile(r"[_\-. ]mask$", re.IGNORECASE)
_JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
_IMAGE_KINDS = ("png", "jpeg", "tiff")


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


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


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
        ScanError: the input is empty, damaged, too large, too small, of an unsupported kind,
            holds non-finite values, or is unsafe (e.g. a ZIP with ``../`` paths). Nothing else:
            an unforeseen failure inside a decoder is reported as a damaged file too (its
            ``unexpected`` attribute is then True, and a warning names where it happened).
    """
    try:
        files, default_name, from_archive = _collect_source(source, name)
        if not files:
            raise ScanError(f"No files found in {default_name or 'the upload'}. Supported: {SUPPORTED_FORMATS}.")
        scan = _load_files(files, case_name=default_name, from_archive=from_archive)
        return _finish(scan, modalities)
    except ScanError:
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
    mask = np.asarray(mask)
    if mask.shape != tuple(scan.shape):
        raise ValueError(f"mask has shape {mask.shape}, expected the scan's (D, H, W) = {tuple(scan.shape)}")
    if scan.is_2d:
        return mask[0]
    from nibabel.orientations import apply_orientation

    ornt = scan.meta.get("ornt")
    if ornt is None:
        ornt = _display_ornt(scan.affine)  # a Scan built by hand: the volume convention
    inverse = _invert_ornt(np.asarray(ornt))
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


# --------------------------------------------------------------------------------------------
# Input collection: everything becomes a list of in-memory files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    name: str  # posix path inside the upload, used for messages, sorting and grouping
    data: bytes

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name

    @property
    def folder(self) -> str:
        return str(PurePosixPath(self.name).parent)


def _collect_source(source: Any, name: str | None) -> tuple[list[_File], str, bool]:
    """Returns (files, display name, whether the files came from a multi-file container)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        fname = name or "upload"
        return [_File(_safe_display_name(fname), data)], _strip_ext(PurePosixPath(fname).name), False
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return _read_folder(path), name or path.name, True
        return [_read_path(path)], name or _strip_ext(path.name), False
    if _is_upload_object(source):
        fname = getattr(source, "name", None) or name or "upload"
        return [_File(_safe_display_name(fname), _upload_bytes(source))], name or _strip_ext(PurePosixPath(fname).name), False
    if isinstance(source, list | tuple):
        files: list[_File] = []
        total = 0
        if len(source) > MAX_FILES:
            raise ScanError(f"The upload has {len(source)} files; at most {MAX_FILES} are accepted.")
        for item in source:
            if isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], bytes | bytearray | memoryview):
                f = _File(_safe_display_name(str(item[0])), bytes(item[1]))
            elif isinstance(item, str | os.PathLike):
                p = Path(item)
                if p.is_dir():
                    raise ScanError(f"'{p.name}' is a folder; upload a folder on its own, or its files.")
                f = _read_path(p)
            elif _is_upload_object(item):
                f = _File(_safe_display_name(str(item.name)), _upload_bytes(item))
            else:
                raise ScanError(
                    f"Each item of a multi-file upload must be a (filename, bytes) pair or a path, not {type(item).__name__}."
                )
            total += len(f.data)
            if total > MAX_UNCOMPRESSED:
                raise ScanError(f"The upload is larger than {_human(MAX_UNCOMPRESSED)}; that is too large for one scan.")
            files.append(f)
        if len(files) == 1:
            only = files[0]
            return files, name or _strip_ext(only.basename), False
        parents = {Path(item).resolve().parent.name for item in source if isinstance(item, str | os.PathLike)}
        fallback = (
            parents.pop()
            if len(parents) == 1 and len(files) == len(source) and all(isinstance(item, str | os.PathLike) for item in source)
            else "upload"
        )
        return files, name or _common_folder(files) or fallback, True
    raise ScanError(
        f"Cannot read a {type(source).__name__}: give a path, the file's bytes, or a list of (filename, bytes) pairs or paths."
    )


def _is_upload_object(obj: Any) -> bool:
    return hasattr(obj, "getvalue") and hasattr(obj, "name") and not isinstance(obj, str | bytes)


def _upload_bytes(obj: Any) -> bytes:
    data = obj.getvalue()
    if len(data) > MAX_UNCOMPRESSED:
        raise ScanError(f"'{obj.name}' is larger than {_human(MAX_UNCOMPRESSED)}; that is too large for one scan.")
    return bytes(data)


def _safe_display_name(name: str) -> str:
    # Only used for messages, sorting and role detection; never to open a file.
    return name.replace("\\", "/").lstrip("/") or "upload"


def _read_path(path: Path) -> _File:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ScanError(f"File not found: '{path}'.") from None
    except OSError as exc:
        raise ScanError(f"Cannot open '{path}': {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise ScanError(f"'{path}' is not a regular file.")
    if st.st_size > MAX_UNCOMPRESSED:
        raise ScanError(f"'{path.name}' is {_human(st.st_size)}; at most {_human(MAX_UNCOMPRESSED)} can be read.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScanError(f"Cannot read '{path.name}': {exc.strerror or exc}.") from None
    return _File(path.name, data)


def _read_folder(root: Path) -> list[_File]:
    files: list[_File] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for fname in sorted(filenames):
            if fname.startswith(".") or fname.lower() in _JUNK_NAMES:
                continue
            path = Path(dirpath) / fname
            if path.is_symlink() or not path.is_file():
                continue
            if len(files) >= MAX_FILES:
                raise ScanError(f"The folder '{root.name}' holds more than {MAX_FILES} files; upload one case at a time.")
            size = path.stat().st_size
            total += size
            if total > MAX_UNCOMPRESSED:
                raise ScanError(
                    f"The folder '{root.name}' holds more than {_human(MAX_UNCOMPRESSED)}; upload one case at a time."
                )
            rel = path.relative_to(root).as_posix()
            files.append(_File(rel, _read_path(path).data))
    return files


def _read_zip(f: _File) -> list[_File]:
    """Unpack a ZIP in memory, refusing unsafe names and enforcing the size caps while reading."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(f.data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        # NotImplementedError: a damaged end record can read as a multi-disk archive.
        raise ScanError(f"'{f.basename}' is not a readable ZIP archive ({exc}); it may be truncated or damaged.") from None
    with zf:
        infos = zf.infolist()
        members = [i for i in infos if not i.is_dir()]
        if len(members) > MAX_FILES:
            raise ScanError(f"'{f.basename}' holds {len(members)} files; at most {MAX_FILES} are accepted.")
        for info in infos:
            _check_zip_name(f.basename, info.filename)
        declared = sum(i.file_size for i in members)
        if declared > MAX_UNCOMPRESSED:
            raise ScanError(
                f"'{f.basename}' would unpack to {_human(declared)}, more than the {_human(MAX_UNCOMPRESSED)} allowed; "
                "upload one case at a time."
            )
        out: list[_File] = []
        budget = MAX_UNCOMPRESSED
        for info in members:
            inner = info.filename.replace("\\", "/")
            parts = PurePosixPath(inner).parts
            if any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in _JUNK_NAMES:
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                logger.warning("Skipped a symbolic link inside a ZIP upload")
                continue
            if info.flag_bits & 0x1:
                raise ScanError(f"'{inner}' in '{f.basename}' is password-protected; upload an unencrypted ZIP.")
            data = _read_zip_member(zf, info, f.basename, budget)
            budget -= len(data)
            out.append(_File(inner, data))
    return out


def _check_zip_name(archive: str, member: str) -> None:
    norm = member.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in norm.split("/") or "\x00" in norm:
        raise ScanError(
            f"'{archive}' contains an unsafe path ('{member}') that points outside the archive; "
            "it was refused. Re-create the ZIP from the case folder."
        )


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, budget: int) -> bytes:
    limit = min(info.file_size, budget)
    chunks: list[bytes] = []
    total = 0
    try:
        with zf.open(info) as stream:
            while True:
                chunk = stream.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    if total > budget:
                        raise ScanError(f"'{archive}' unpacks to more than {_human(MAX_UNCOMPRESSED)}; it was refused.")
                    raise ScanError(
                        f"'{info.filename}' in '{archive}' is larger than the archive says; the ZIP is damaged or crafted."
                    )
                chunks.append(chunk)
    except ScanError:
        raise
    except NotImplementedError:
        raise ScanError(
            f"'{info.filename}' in '{archive}' uses a compression method that cannot be read; re-create the ZIP."
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
        raise ScanError(f"'{info.filename}' in '{archive}' is damaged ({exc}).") from None
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------
# Format detection and dispatch
# --------------------------------------------------------------------------------------------

_FOREIGN_MAGIC = (
    (b"%PDF", "a PDF document"),
    (b"GIF8", "a GIF image"),
    (b"NRRD", "an NRRD volume"),
    (b"ObjectType", "a MetaImage (.mha/.mhd) volume"),
    (b"\x89HDF", "an HDF5 file"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ", "an xz archive"),
    (b"{\\rtf", "an RTF document"),
    (b"\xd0\xcf\x11\xe0", "an Office document"),
)


def _nifti_magic(data: bytes) -> str | None:
    """'nifti1', 'nifti2', 'pair' (a .hdr of a two-file NIfTI), 'analyze', or None."""
    if len(data) >= 348:
        for fmt in ("<i", ">i"):
            (size,) = struct.unpack_from(fmt, data, 0)
            if size == 348:
                magic = data[344:348]
                if magic == b"n+1\x00":
                    return "nifti1"
                if magic == b"ni1\x00":
                    return "pair"
                return "analyze"
            if size == 540 and data[4:8] == b"n+2\x00":
                return "nifti2"
            if size == 540 and data[4:8] == b"ni2\x00":
                return "pair"
    return None


def _sniff(data: bytes) -> str | None:
    """Format from the content's first bytes; None when unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if data.startswith(b"\x1f\x8b"):
        return "gzip"
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    magic = _nifti_magic(data)
    if magic in ("nifti1", "nifti2"):
        return "nifti"
    if magic in ("pair", "analyze"):
        return "analyze"
    return None


def _kind_from_name(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return "nifti.gz"
    if lower.endswith(".nii"):
        return "nifti"
    if lower.endswith(".gz"):
        return "gzip"
    ext = PurePosixPath(lower).suffix
    return {
        ".png": "png",
        ".jpg": "jpeg",
        ".jpeg": "jpeg",
        ".jpe": "jpeg",
        ".tif": "tiff",
        ".tiff": "tiff",
        ".zip": "zip",
        ".dcm": "dicom",
        ".dicom": "dicom",
        ".ima": "dicom",
    }.get(ext)


_KIND_WORDS = {
    "nifti.gz": "a gzip-compressed NIfTI (.nii.gz)",
    "nifti": "a NIfTI (.nii)",
    "gzip": "a gzip-compressed",
    "png": "a PNG",
    "jpeg": "a JPEG",
    "tiff": "a TIFF",
    "zip": "a ZIP",
    "dicom": "a DICOM",
}


def _detect(f: _File) -> str:
    """Decide how to read one file: 'png' | 'jpeg' | 'tiff' | 'zip' | 'gzip' | 'dicom' | 'dicom?' | 'nifti'.

    The content decides when it is recognisable (a mis-named file still loads); the name is the
    fallback (e.g. DICOM without the 128-byte preamble). Raises ScanError with the reason otherwise.
    """
    data = f.data
    if not data:
        raise ScanError(f"'{f.basename}' is empty (0 bytes); the upload may have failed. Please try again.")
    sniffed = _sniff(data)
    by_name = _kind_from_name(f.basename)
    if sniffed == "analyze":
        raise ScanError(
            f"'{f.basename}' is the header of a two-file Analyze/NIfTI pair (.hdr/.img), which is not supported; "
            "convert it to a single .nii or .nii.gz file."
        )
    if sniffed is not None:
        if by_name and by_name.split(".")[0] != sniffed and not (by_name == "nifti.gz" and sniffed == "gzip"):
            logger.info("A file named like %s holds %s data; reading it as %s", by_name, sniffed, sniffed)
        return sniffed
    for magic, what in _FOREIGN_MAGIC:
        if data.startswith(magic):
            raise ScanError(f"'{f.basename}' is {what}, which cannot be read here. Supported: {SUPPORTED_FORMATS}.")
    if len(data) > 262 and data[257:262] == b"ustar":
        raise ScanError(f"'{f.basename}' is a TAR archive; please upload a ZIP archive instead.")
    if by_name == "dicom":
        return "dicom?"
    if by_name is not None:
        raise ScanError(
            f"'{f.basename}' is named like {_KIND_WORDS[by_name]} file, but its content is not one: "
            "it may be damaged, truncated, or a different file that was renamed."
        )
    if PurePosixPath(f.basename).suffix == "":
        return "dicom?"  # DICOM files from scanners often have no extension and sometimes no preamble
    raise ScanError(f"'{f.basename}' is not a supported file type. Supported: {SUPPORTED_FORMATS}.")


def _load_files(files: list[_File], *, case_name: str, from_archive: bool, depth: int = 0) -> Scan:
    """Classify the files (unpacking ZIPs and gzip-wrapped files) and run the matching reader."""
    groups: dict[str, list[_File]] = {"nifti": [], "dicom": [], "image": []}
    maybe_dicom: list[_File] = []
    skipped: list[str] = []
    single = len(files) == 1 and not from_archive
    unpacked = _Tally()
    for f in files:
        try:
            kind = _detect(f)
        except ScanError:
            if single:
                raise
            skipped.append(f.basename)
            continue
        if kind == "zip":
            if depth >= 1:
                skipped.append(f.basename)
                continue
            inner = _read_zip(f)
            if not inner:
                raise ScanError(f"'{f.basename}' is an empty ZIP archive.")
            if len(files) == 1:
                name = _common_folder(inner) or _strip_ext(f.basename)
                scan = _load_files(inner, case_name=name, from_archive=True, depth=depth + 1)
                scan.meta.setdefault("archive", f.basename)
                return scan
            unpacked.add(sum(len(g.data) for g in inner))
            _classify_unpacked(inner, groups, maybe_dicom, skipped, unpacked)
            continue
        if kind == "gzip":
            kind, f = _gunzip_file(f, strict=single)
            unpacked.add(len(f.data) if kind not in ("nifti.gz", None) else 0)
            if kind is None:
                skipped.append(f.basename)
                continue
        _add_to_group(kind, f, groups, maybe_dicom)

    # Files without a recognisable signature are tried as DICOM only when nothing else claims the upload.
    if maybe_dicom and not groups["nifti"] and not groups["image"]:
        groups["dicom"].extend(maybe_dicom)
    else:
        skipped.extend(m.basename for m in maybe_dicom)

    present = [k for k, v in groups.items() if v]
    if not present:
        listed = ", ".join(sorted(skipped)[:8]) + (" ..." if len(skipped) > 8 else "")
        raise ScanError(f"None of the files could be used ({listed}). Supported: {SUPPORTED_FORMATS}.")
    if len(present) > 1:
        words = {"nifti": "NIfTI volumes", "dicom": "DICOM files", "image": "2D images"}
        raise ScanError(
            f"The upload mixes {' and '.join(words[k] for k in present)}; upload one scan (one kind of file) at a time."
        )
    if skipped:
        logger.info("Ignored %d file(s) that are not images", len(skipped))
    kind = present[0]
    if kind == "nifti":
        scan = _read_nifti_set(groups["nifti"], case_name)
    elif kind == "dicom":
        try:
            scan = _read_dicom(groups["dicom"], case_name, single=single)
        except ScanError:
            raise
        except _DICOM_DECODE_ERRORS as exc:
            # pydicom decodes element values lazily: a damaged header fails wherever it is first read.
            # Only the type is shown; the message could quote a value (e.g. a name).
            raise ScanError(
                f"A DICOM header in the upload is damaged ({type(exc).__name__} while reading its attributes); "
                "export the series again or upload other files."
            ) from None
    else:
        scan = _read_images(groups["image"], case_name, in_zip=depth > 0)
    if skipped:
        scan.meta["ignored_files"] = sorted(skipped)
        _note(scan, f"ignored {len(skipped)} file(s) that are not scans")
    return scan


_DICOM_DECODE_ERRORS = (
    NotImplementedError,
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    OverflowError,
    struct.error,
)


class _Tally:
    """Bytes unpacked so far from the archives and gzip files of one multi-file upload."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, nbytes: int) -> None:
        self.total += nbytes
        if self.total > MAX_UNCOMPRESSED:
            raise ScanError(f"The upload unpacks to more than {_human(MAX_UNCOMPRESSED)}; upload one case at a time.")


def _classify_unpacked(
    inner: list[_File], groups: dict[str, list[_File]], maybe_dicom: list[_File], skipped: list[str], unpacked: _Tally
) -> None:
    for g in inner:
        try:
            kind = _detect(g)
        except ScanError:
            skipped.append(g.basename)
            continue
        if kind == "zip":
            skipped.append(g.basename)
            continue
        if kind == "gzip":
            kind, g = _gunzip_file(g, strict=False)
            unpacked.add(len(g.data) if kind not in ("nifti.gz", None) else 0)
            if kind is None:
                skipped.append(g.basename)
                continue
        _add_to_group(kind, g, groups, maybe_dicom)


def _add_to_group(kind: str, f: _File, groups: dict[str, list[_File]], maybe_dicom: list[_File]) -> None:
    if kind in _IMAGE_KINDS:
        groups["image"].append(f)
    elif kind in ("nifti", "nifti.gz"):
        groups["nifti"].append(f)
    elif kind == "dicom":
        groups["dicom"].append(f)
    elif kind == "dicom?":
        maybe_dicom.append(f)


def _gunzip_file(f: _File, *, strict: bool) -> tuple[str | None, _File]:
    """Classify a gzip file: a .nii.gz stays compressed (read later with a header-driven cap);
    anything else (e.g. .dcm.gz) is decompressed here and sniffed."""
    head = _gunzip(f.data, f.basename, 4096, partial=True)
    if _nifti_magic(head) in ("nifti1", "nifti2"):
        return "nifti.gz", f
    if f.basename.lower().endswith(".nii.gz"):
        if strict:
            raise ScanError(
                f"'{f.basename}' is gzip-compressed but what it holds is not a NIfTI image; the file may be renamed or damaged."
            )
        return None, f
    inner_name = f.name[:-3] if f.name.lower().endswith(".gz") else f.name
    # Decompress in full only what looks like a scan from its first 4 KiB: a gzip bomb of zeros or
    # text is refused after 4 KiB instead of after MAX_UNCOMPRESSED bytes of memory.
    try:
        head_kind = _detect(_File(inner_name, head))
        if head_kind == "dicom?" and not _looks_like_raw_dicom(head):
            raise ScanError(
                f"'{f.basename}' is gzip-compressed but what it holds is not a DICOM file or any other supported file. "
                f"Supported: {SUPPORTED_FORMATS}."
            )
    except ScanError:
        if strict:
            raise
        return None, _File(inner_name, b"")
    inner = _File(inner_name, _gunzip(f.data, f.basename, MAX_UNCOMPRESSED))
    try:
        kind = _detect(inner)
    except ScanError:
        if strict:
            raise
        return None, inner
    if kind in ("zip", "gzip"):
        if strict:
            raise ScanError(f"'{f.basename}' holds another archive inside; please upload a single ZIP.")
        return None, inner
    return kind, inner


def _looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble starts with a group 0002 or 0008 tag (little endian)."""
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")


#: Most bytes produced per zlib call: a bomb never gets one huge allocation, only up to the limit.
_GUNZIP_CHUNK = 16 * 1024 * 1024


def _gunzip(data: bytes, name: str, limit: int, *, partial: bool = False) -> bytes:
    """Decompress gzip data (all members) without ever holding more than ``limit`` bytes.

    Args:
        data: the compressed bytes.
        name: file name for messages.
        limit: most bytes to produce.
        partial: return what was decompressed when the limit is reached or the stream ends early
            (to peek at a header, or when the caller checks the length itself) instead of raising.
    """
    out = bytearray()
    buf = data
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not d.eof:
            try:
                chunk = d.decompress(buf, min(limit + 1 - len(out), _GUNZIP_CHUNK))
            except zlib.error as exc:
                raise ScanError(f"'{name}' is a damaged gzip file ({exc}); please export or download it again.") from None
            out += chunk
            if len(out) > limit:
                if partial:
                    return bytes(out[:limit])
                raise ScanError(
                    f"'{name}' decompresses to more than {_human(limit)}, more than any scan this app reads; it was refused."
                )
            buf = d.unconsumed_tail
            if not buf and not chunk:
                break
        if not d.eof:
            if partial:
                return bytes(out)
            raise ScanError(f"'{name}' is truncated: the compressed data ends early. Please upload the complete file.")
        rest = d.unused_data
        if not rest.startswith(b"\x1f\x8b"):
            # Trailing zeros are common padding; other trailing bytes are ignored like gzip tools do.
            break
        buf = rest
    return bytes(out)


# --------------------------------------------------------------------------------------------
# NIfTI and BraTS
# --------------------------------------------------------------------------------------------


@dataclass
class _Nifti:
    name: str
    image: Any  # nibabel Nifti1Image / Nifti2Image backed by in-memory bytes
    shape: tuple[int, int, int, int]  # (X, Y, Z, C) after dropping singleton dimensions

    @property
    def voxels(self) -> int:
        return math.prod(self.shape)


def _open_nifti(f: _File, voxel_budget: int = MAX_VOXELS) -> _Nifti:
    """Parse a NIfTI header, check it against the limits, and wrap the data without decoding it."""
    if f.data.startswith(b"\x1f\x8b"):
        head = _gunzip(f.data, f.basename, 4096, partial=True)
        header, shape, offset, nbytes = _nifti_layout(f.basename, head, voxel_budget)
        raw = _gunzip(f.data, f.basename, offset + nbytes, partial=True)
    else:
        header, shape, offset, nbytes = _nifti_layout(f.basename, f.data, voxel_budget)
        raw = f.data
    if len(raw) < offset + nbytes:
        raise ScanError(
            f"'{f.basename}' is truncated: its header promises {_human(nbytes)} of image data but only "
            f"{_human(max(0, len(raw) - offset))} are there. Please upload the complete file."
        )
    klass = _nifti_image_class(header)
    try:
        image = klass.from_bytes(raw[: offset + nbytes])
    except Exception as exc:
        raise ScanError(f"'{f.basename}' could not be read as NIfTI ({_short(exc)}); the file may be damaged.") from None
    return _Nifti(_strip_ext(f.basename), image, shape)


def _nifti_image_class(header: Any) -> Any:
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

    magic = _nifti_magic(head)
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
        raise ScanError(f"The header of '{name}' is damaged ({_short(exc)}); it cannot be read as NIfTI.") from None
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
            f"with up to {MAX_CHANNELS} modalities on the last axis are supported."
        )
    channels = extra[0] if extra else 1
    if channels > MAX_CHANNELS:
        raise ScanError(
            f"'{name}' holds {channels} volumes (e.g. a functional or diffusion series); this app expects a structural "
            f"scan with at most {MAX_CHANNELS} modalities."
        )
    shape = (*spatial, channels)
    voxels = math.prod(shape)
    if voxels > voxel_budget:
        raise ScanError(
            f"'{name}' claims {voxels:,} voxels (shape {raw_shape}); at most {MAX_VOXELS:,} are supported. "
            "The file is either damaged or far larger than an MRI scan."
        )
    nbytes = math.prod(raw_shape) * dtype.itemsize
    if offset + nbytes > MAX_UNCOMPRESSED:
        raise ScanError(
            f"The header of '{name}' is damaged (image data said to start at byte {offset:,}); it cannot be read as NIfTI."
        )
    return header, shape, offset, nbytes  # type: ignore[return-value]


def _nifti_data(nii: _Nifti) -> np.ndarray:
    """Decoded intensities ``(X, Y, Z, C)`` float32 (NIfTI scaling applied)."""
    try:
        data = np.asanyarray(nii.image.dataobj)
    except Exception as exc:
        raise ScanError(f"The image data of '{nii.name}' could not be decoded ({_short(exc)}).") from None
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(data, dtype=np.float32).reshape(nii.shape)


def _read_nifti_set(files: list[_File], case_name: str) -> Scan:
    """One NIfTI (3D or 4D), or a case of several co-registered NIfTI files (BraTS naming)."""
    if len(files) == 1:
        return _read_single_nifti(files[0])
    roles: dict[str, _File] = {}
    unknown: list[_File] = []
    for f in sorted(files, key=lambda g: _natural_key(g.name)):
        role = _nifti_role(f.basename)
        if role is None:
            unknown.append(f)
            continue
        if role in roles:
            raise ScanError(
                f"Two files look like the same {_ROLE_WORDS.get(role, role)}: '{roles[role].basename}' and '{f.basename}'. "
                "Upload one case at a time."
            )
        roles[role] = f
    image_roles = [m for m in CANONICAL_MODALITIES if m in roles]
    if image_roles:
        images = [(m, roles[m]) for m in image_roles]
        if unknown:
            logger.info("Ignored %d NIfTI file(s) whose names do not say which contrast they hold", len(unknown))
    elif len(unknown) == 1:
        images = [(UNSPECIFIED, unknown[0])]
        unknown = []
    else:
        names = ", ".join(f"'{u.basename}'" for u in unknown[:6])
        raise ScanError(
            f"Several NIfTI files whose contrast cannot be told from their names ({names}). Name them like a BraTS case "
            "(<case>_t1.nii.gz, _t1ce, _t2, _flair, _seg) or upload one file."
        )
    label_file = roles.get("label")
    brainmask_file = roles.get("brainmask")

    budget = MAX_VOXELS
    opened: list[tuple[str, _Nifti]] = []
    for modality, f in images:
        nii = _open_nifti(f, budget)
        if nii.shape[3] != 1:
            raise ScanError(f"'{f.basename}' is 4D ({nii.shape[3]} volumes); each file of a case must be one 3D volume.")
        budget -= nii.voxels
        opened.append((modality, nii))
    ref_name, ref = opened[0][1].name, opened[0][1]
    ref_affine = np.asarray(ref.image.affine, dtype=float)
    aux: dict[str, _Nifti] = {}
    for role, f in (("label", label_file), ("brainmask", brainmask_file)):
        if f is not None:
            aux[role] = _open_nifti(f)
    for nii in [n for _, n in opened[1:]] + list(aux.values()):
        if nii.shape[:3] != ref.shape[:3]:
            raise ScanError(
                f"'{nii.name}' is {_xyz(nii.shape)} voxels but '{ref_name}' is {_xyz(ref.shape)}; "
                "all files of one case must share the same grid."
            )
        if not np.allclose(np.asarray(nii.image.affine, dtype=float), ref_affine, atol=1e-3):
            logger.warning("The files of one case have slightly different affines; using the first image's")
    data = np.concatenate([_nifti_data(n) for _, n in opened], axis=3)
    modalities = tuple(m for m, _ in opened)
    is_brats = bool(image_roles) and (len(opened) > 1 or "label" in aux or "brainmask" in aux)
    scan = _volume_scan(
        data,
        ref_affine,
        name=case_name,
        source_format="brats" if is_brats else "nifti",
        modalities=modalities,
        header=ref.image.header,
    )
    scan.meta["files"] = {m: f.basename for m, f in images}
    if unknown:
        scan.meta["ignored_files"] = sorted(u.basename for u in unknown)
        _note(scan, f"ignored {len(unknown)} NIfTI file(s) of unknown contrast")
    if is_brats:
        scan.meta["brats_layout"] = _brats_layout([f.basename for f in files])
    if "label" in aux:
        classes = _nifti_data(aux["label"])[..., 0]
        finite = np.isfinite(classes)
        if not finite.all() or classes.min() < 0 or classes.max() > 255:
            raise ScanError(f"The label file '{aux['label'].name}' holds values outside 0..255; it is not a segmentation.")
        classes_u8 = np.rint(classes).astype(np.uint8)
        display = _to_display_labels(classes_u8, scan)
        scan.meta["label_classes"] = display
        scan.meta["files"]["label"] = label_file.basename  # type: ignore[union-attr]
        scan.label = (display > 0).astype(np.uint8)
    if "brainmask" in aux:
        brain = _nifti_data(aux["brainmask"])[..., 0]
        scan.meta["brainmask"] = _to_display_labels((np.nan_to_num(brain) > 0.5).astype(np.uint8), scan)
        scan.meta["files"]["brainmask"] = brainmask_file.basename  # type: ignore[union-attr]
    return scan


def _read_single_nifti(f: _File) -> Scan:
    nii = _open_nifti(f)
    data = _nifti_data(nii)
    channels = data.shape[3]
    modalities = (UNSPECIFIED,) if channels == 1 else tuple(f"channel{i}" for i in range(channels))
    return _volume_scan(
        data,
        np.asarray(nii.image.affine, dtype=float),
        name=nii.name,
        source_format="nifti",
        modalities=modalities,
        header=nii.image.header,
    )


_ROLE_WORDS = {
    "t1": "T1",
    "t1c": "T1 post-contrast",
    "t2": "T2",
    "flair": "FLAIR",
    "label": "label file",
    "brainmask": "brain mask",
}


def _nifti_role(basename: str) -> str | None:
    """Modality or role of a case file from its name: 't1'|'t1c'|'t2'|'flair'|'label'|'brainmask'|None."""
    tokens = [t for t in re.split(r"[_\-.\s]+", _strip_ext(basename).lower()) if t]
    if not tokens:
        return None
    if tokens[-1] == "brainmask" or tokens[-2:] == ["brain", "mask"]:
        return "brainmask"
    for token in (tokens[-1], tokens[0]):  # 2020+: <case>_t1ce ; 2015: Flair_subtrMeanDivStd
        if token in _MODALITY_ALIASES:
            return _MODALITY_ALIASES[token]
        if token in _LABEL_TOKENS:
            return "label"
    return None


def _brats_layout(names: list[str]) -> str:
    lower = " ".join(n.lower() for n in names)
    if "subtrmeandivstd" in lower or "otmulticlass" in lower:
        return "2015"
    if re.search(r"[-_](t1n|t2f|t2w)\.nii", lower):
        return "2023"
    return "2020"


# --------------------------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------------------------


# Display axis codes of (W, H, D) for a single slice, by the world axis its normal is closest to:
# axial as volumes; coronal and sagittal with superior at the top and, sagittal, anterior on the left.
_SINGLE_SLICE_AXCODES = {2: ("L", "P", "S"), 1: ("L", "I", "A"), 0: ("P", "I", "L")}
_PLANES = {2: "axial", 1: "coronal", 0: "sagittal"}


def _display_ornt(affine: np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
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


def _invert_ornt(ornt: np.ndarray) -> np.ndarray:
    """The orientation transform that undoes ``ornt``."""
    inverse = np.zeros_like(ornt)
    for axis, (target, flip) in enumerate(ornt):
        inverse[int(target)] = (axis, flip)
    return inverse


def _volume_scan(
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
    ornt = _display_ornt(affine, spatial)
    lps = apply_orientation(data_xyzc, ornt)  # (W, H, D, C) in display orientation
    array = np.ascontiguousarray(lps.transpose(3, 2, 1, 0), dtype=np.float32)
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


def _to_display_labels(source_xyz: np.ndarray, scan: Scan) -> np.ndarray:
    """A label volume in the source grid ``(X, Y, Z)`` -> display ``(D, H, W)``, same dtype."""
    from nibabel.orientations import apply_orientation

    return np.ascontiguousarray(apply_orientation(source_xyz, scan.meta["ornt"]).transpose(2, 1, 0))


def _axcodes(affine: np.ndarray) -> tuple[str, ...]:
    import nibabel as nib

    return tuple(str(c) for c in nib.aff2axcodes(affine))


# --------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------


@dataclass
class _Frame:
    source: str  # file name, for messages
    dataset: Any
    index: int | None  # frame number inside a multi-frame dataset, None for a single-frame file
    position: np.ndarray | None
    orientation: np.ndarray | None
    pixel_spacing: tuple[float, float] | None
    slope: float
    intercept: float
    instance: int
    thickness: float | None
    between: float | None


def _read_dicom(files: list[_File], case_name: str, *, single: bool) -> Scan:
    import pydicom  # heavy, only needed for DICOM

    datasets: list[tuple[str, Any]] = []
    no_pixels = 0  # e.g. DICOMDIR, reports, presentation states
    stripped: list[str] = []  # image attributes without pixel data: truncated, or the image was removed
    unreadable: list[str] = []
    for f in sorted(files, key=lambda g: _natural_key(g.name)):
        has_preamble = len(f.data) >= 132 and f.data[128:132] == b"DICM"
        try:
            ds = pydicom.dcmread(io.BytesIO(f.data), force=not has_preamble)
        except Exception as exc:
            if single and has_preamble:
                raise ScanError(
                    f"'{f.basename}' is not a readable DICOM file ({_short(exc)}); it may be truncated or damaged."
                ) from None
            unreadable.append(f.basename)
            continue
        if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            if not has_preamble and "SOPClassUID" not in ds:
                unreadable.append(f.basename)  # forced parse of something that is not DICOM at all
            elif "Rows" in ds:
                stripped.append(f.basename)
            else:
                no_pixels += 1
            continue
        if "Rows" not in ds or "Columns" not in ds:
            unreadable.append(f.basename)
            continue
        datasets.append((f.basename, ds))
    if not datasets:
        if stripped:
            raise ScanError(
                f"'{stripped[0]}' describes an image but holds no pixel data: the file is probably truncated, "
                "or its image was removed. Please upload the complete DICOM files."
            )
        if no_pixels:
            raise ScanError(
                "The DICOM file(s) hold no image data (e.g. a DICOMDIR index, a report or a structured report); "
                "upload the image files of the series."
            )
        if single:
            raise ScanError(f"'{files[0].basename}' is not a supported file type. Supported: {SUPPORTED_FORMATS}.")
        raise ScanError(f"No readable DICOM images found ({', '.join(unreadable[:5])}); the files may be damaged or not DICOM.")

    frames = [frame for fname, ds in datasets for frame in _dicom_frames(fname, ds)]
    series: dict[tuple[Any, ...], list[_Frame]] = {}
    for fr in frames:
        ds = fr.dataset
        iop = tuple(np.round(fr.orientation, 3)) if fr.orientation is not None else None
        key = (str(ds.get("SeriesInstanceUID", "")), int(ds.Rows), int(ds.Columns), iop)
        series.setdefault(key, []).append(fr)
    ordered = sorted(series.values(), key=len, reverse=True)
    chosen = ordered[0]
    notes: list[str] = []
    if len(ordered) > 1:
        notes.append(f"the upload holds {len(ordered)} DICOM series or stacks; using the largest ({len(chosen)} slices)")
        logger.info("DICOM upload with %d series; using the largest (%d frames)", len(ordered), len(chosen))
    if unreadable:
        notes.append(f"skipped {len(unreadable)} unreadable file(s)")
    if no_pixels or stripped:
        notes.append(f"skipped {no_pixels + len(stripped)} DICOM file(s) without image data")

    rows, cols = int(chosen[0].dataset.Rows), int(chosen[0].dataset.Columns)
    voxels = rows * cols * len(chosen)
    if voxels > MAX_VOXELS:
        raise ScanError(
            f"The DICOM series has {voxels:,} voxels ({len(chosen)} slices of {cols}x{rows}); at most {MAX_VOXELS:,} are supported."
        )
    for fr in chosen:
        if int(fr.dataset.get("SamplesPerPixel", 1)) != 1:
            raise ScanError(f"'{fr.source}' is a colour DICOM image (e.g. a screenshot or secondary capture), not grayscale MRI.")

    chosen, order_note, slice_step, duplicates = _sort_frames(chosen)
    if order_note:
        notes.append(order_note)
    if duplicates:
        notes.append(f"dropped {duplicates} slice(s) repeated at the same position")

    pixels = _decode_frames(chosen)  # (n, rows, cols) float32
    first = chosen[0]
    row_dir, col_dir = _dicom_directions(first)
    dr, dc = first.pixel_spacing or (1.0, 1.0)
    if first.pixel_spacing is None:
        notes.append("pixel spacing not given; assumed 1 mm")
    normal = np.cross(row_dir, col_dir)
    lps = np.eye(4)
    lps[:3, 0] = row_dir * dc  # along a row: increasing column index
    lps[:3, 1] = col_dir * dr  # down a column: increasing row index
    positions = [fr.position for fr in chosen]
    if len(chosen) > 1 and all(p is not None for p in positions):
        lps[:3, 2] = (positions[-1] - positions[0]) / (len(chosen) - 1)  # type: ignore[operator]
    else:
        lps[:3, 2] = normal * slice_step
    lps[:3, 3] = positions[0] if positions[0] is not None else 0.0
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM patient space is LPS; NIfTI world is RAS
    data = pixels.transpose(2, 1, 0)[..., None]  # (cols, rows, slices, 1): the affine's voxel order
    scan = _volume_scan(data, ras, name=case_name, source_format="dicom", modalities=(UNSPECIFIED,))
    ts = first.dataset.file_meta.get("TransferSyntaxUID") if hasattr(first.dataset, "file_meta") else None
    scan.meta.update(
        {
            "dicom_series_count": len(ordered),
            "dicom_slices": len(chosen),
            "dicom_ignored_frames": sum(len(s) for s in ordered[1:]),
            "dicom_transfer_syntax": str(ts) if ts else None,
            "dicom_modality": str(first.dataset.get("Modality", "")),
        }
    )
    for n in notes:
        _note(scan, n)
    return scan


def _dicom_frames(fname: str, ds: Any) -> list[_Frame]:
    """One _Frame per 2D image in a dataset (classic single-frame or enhanced multi-frame)."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    thickness = _float(ds.get("SliceThickness"))
    between = _float(ds.get("SpacingBetweenSlices"))
    base = {
        "position": _vector(ds.get("ImagePositionPatient"), 3),
        "orientation": _vector(ds.get("ImageOrientationPatient"), 6),
        "pixel_spacing": _pair(ds.get("PixelSpacing")),
        "slope": _float(ds.get("RescaleSlope")) or 1.0,
        "intercept": _float(ds.get("RescaleIntercept")) or 0.0,
        "instance": int(_float(ds.get("InstanceNumber")) or 0),
    }
    if n == 1 and "PerFrameFunctionalGroupsSequence" not in ds:
        return [_Frame(fname, ds, None, thickness=thickness, between=between, **base)]
    frames = []
    for i in range(n):
        info = dict(base)
        info["instance"] = i
        frame_thickness, frame_between = thickness, between
        pos = _functional_item(ds, i, "PlanePositionSequence")
        if pos is not None:
            info["position"] = _vector(pos.get("ImagePositionPatient"), 3)
        elif n > 1:
            info["position"] = None  # a file-level position cannot place every frame
        ori = _functional_item(ds, i, "PlaneOrientationSequence")
        if ori is not None:
            info["orientation"] = _vector(ori.get("ImageOrientationPatient"), 6)
        measures = _functional_item(ds, i, "PixelMeasuresSequence")
        if measures is not None:
            info["pixel_spacing"] = _pair(measures.get("PixelSpacing")) or info["pixel_spacing"]
            frame_thickness = _float(measures.get("SliceThickness")) or thickness
            frame_between = _float(measures.get("SpacingBetweenSlices")) or between
        transform = _functional_item(ds, i, "PixelValueTransformationSequence")
        if transform is not None:
            info["slope"] = _float(transform.get("RescaleSlope")) or 1.0
            info["intercept"] = _float(transform.get("RescaleIntercept")) or 0.0
        frames.append(_Frame(fname, ds, i, thickness=frame_thickness, between=frame_between, **info))
    return frames


def _functional_item(ds: Any, index: int, name: str) -> Any:
    """Item of a functional group macro for one frame: per-frame first, then shared."""
    for seq_name, idx in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(seq_name)
        if groups is not None and len(groups) > idx:
            seq = groups[idx].get(name)
            if seq is not None and len(seq) > 0:
                return seq[0]
    return None


def _dicom_directions(frame: _Frame) -> tuple[np.ndarray, np.ndarray]:
    if frame.orientation is None:
        return np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    row_dir = frame.orientation[:3] / (np.linalg.norm(frame.orientation[:3]) or 1.0)
    col_dir = frame.orientation[3:] / (np.linalg.norm(frame.orientation[3:]) or 1.0)
    return row_dir, col_dir


def _sort_frames(frames: list[_Frame]) -> tuple[list[_Frame], str, float, int]:
    """Sort by position along the slice normal (fallback: InstanceNumber).

    Returns (frames, note, slice step in mm, number of dropped duplicates).
    """
    first = frames[0]
    fallback_step = first.between or first.thickness or 1.0
    have_positions = all(f.position is not None for f in frames) and first.orientation is not None
    if not have_positions:
        ordered = sorted(frames, key=lambda f: f.instance)
        note = "" if len(frames) == 1 else "slice positions not given; slices ordered by instance number"
        return ordered, note, fallback_step, 0
    row_dir, col_dir = _dicom_directions(first)
    normal = np.cross(row_dir, col_dir)
    keyed = sorted(frames, key=lambda f: (float(np.dot(f.position, normal)), f.instance))  # type: ignore[arg-type]
    kept: list[_Frame] = []
    last: float | None = None
    for f in keyed:
        d = float(np.dot(f.position, normal))  # type: ignore[arg-type]
        if last is not None and abs(d - last) < 1e-3:
            continue  # e.g. a repeated acquisition or a second echo at the same place
        kept.append(f)
        last = d
    duplicates = len(keyed) - len(kept)
    if len(kept) == 1:
        return kept, "", fallback_step, duplicates
    depths = np.array([float(np.dot(f.position, normal)) for f in kept])  # type: ignore[arg-type]
    steps = np.diff(depths)
    step = float(np.median(steps))
    note = ""
    if np.abs(steps - step).max() > 0.1 * step + 1e-3:
        note = "slice positions are unevenly spaced (missing slices?); using the median spacing"
    return kept, note, step, duplicates


def _decode_frames(frames: list[_Frame]) -> np.ndarray:
    """Decode pixel data (each dataset once) and apply RescaleSlope / RescaleIntercept per frame."""
    cache: dict[int, np.ndarray] = {}
    out = []
    for fr in frames:
        key = id(fr.dataset)
        if key not in cache:
            cache[key] = _dicom_pixels(fr.source, fr.dataset)
        pixels = cache[key]
        image = pixels[fr.index] if fr.index is not None and pixels.ndim == 3 else pixels
        if image.ndim != 2:
            raise ScanError(f"'{fr.source}' has an unexpected pixel layout {image.shape}; only grayscale DICOM is supported.")
        out.append(image.astype(np.float32) * np.float32(fr.slope) + np.float32(fr.intercept))
    shapes = {o.shape for o in out}
    if len(shapes) > 1:
        raise ScanError("The DICOM slices do not all have the same size; upload one series at a time.")
    return np.stack(out)


def _dicom_pixels(fname: str, ds: Any) -> np.ndarray:
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
        frames = int(_float(ds.get("NumberOfFrames")) or 1)
        declared = int(ds.Rows) * int(ds.Columns) * max(frames, 1) * int(ds.get("SamplesPerPixel", 1) or 1)
    except (AttributeError, TypeError, ValueError, OverflowError):
        raise ScanError(f"'{fname}' has damaged image dimensions (Rows, Columns or NumberOfFrames).") from None
    if declared > MAX_VOXELS:
        raise ScanError(f"'{fname}' declares {declared:,} pixel values; at most {MAX_VOXELS:,} are supported.")
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        raise ScanError(
            f"The image data of '{fname}' could not be decoded ({_short(exc)}); the file may be truncated or damaged."
        ) from None


def _dicom_decoder_available(ts: Any) -> bool:
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(ts).is_available)
    except Exception:  # unknown / private transfer syntax
        return False


def _float(value: Any) -> float | None:
    try:
        if value is None or value == "":
            return None
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _vector(value: Any, n: int) -> np.ndarray | None:
    try:
        if value is None:
            return None
        v = np.array([float(x) for x in value], dtype=float)
    except (TypeError, ValueError):
        return None
    if v.shape != (n,) or not np.isfinite(v).all():
        return None
    return v


def _pair(value: Any) -> tuple[float, float] | None:
    v = _vector(value, 2)
    if v is None or (v <= 0).any():
        return None
    return float(v[0]), float(v[1])


# --------------------------------------------------------------------------------------------
# 2D images and stacks of 2D slices
# --------------------------------------------------------------------------------------------


@dataclass
class _Page:
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


def _decode_image(f: _File, kind: str, voxel_budget: int = MAX_VOXELS) -> list[_Page]:
    """Decode all pages of a PNG / JPEG / TIFF file; checks size before decoding pixels."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(f.data), formats=[kind.upper()])
        width, height = im.size
        pages = int(getattr(im, "n_frames", 1) or 1) if kind == "tiff" else 1
    except Image.DecompressionBombError:
        raise ScanError(f"'{f.basename}' claims an enormous image size; it was refused.") from None
    except Exception as exc:
        if kind == "tiff":
            return _decode_tiff_fallback(f, voxel_budget, exc)
        raise ScanError(
            f"'{f.basename}' is not a readable {kind.upper()} image ({_short(exc)}); it may be damaged or truncated."
        ) from None
    _check_image_size(f.basename, width, height, pages, voxel_budget)
    if kind == "tiff" and im.mode in _EIGHT_BIT_MODES and max(_tiff_bits(im), default=8) > 8:
        # Pillow reads e.g. 16-bit RGB TIFFs as 8-bit RGB, silently dropping precision: use tifffile.
        return _decode_tiff_fallback(f, voxel_budget, _UnsupportedMode(f"{im.mode} with more than 8 bits per sample"))
    out: list[_Page] = []
    try:
        for i in range(pages):
            im.seek(i)
            out.append(_Page(_pil_pixels(im), kind))
    except _UnsupportedMode as exc:
        if kind == "tiff":
            return _decode_tiff_fallback(f, voxel_budget, exc)
        raise ScanError(
            f"'{f.basename}' uses the pixel format {exc}, which is not supported; save it as 8/16-bit grayscale or RGB."
        ) from None
    except Exception as exc:
        if kind == "tiff":
            return _decode_tiff_fallback(f, voxel_budget, exc)
        raise ScanError(f"'{f.basename}' could not be decoded ({_short(exc)}); it may be damaged or truncated.") from None
    return out


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


def _decode_tiff_fallback(f: _File, voxel_budget: int, first_error: Exception) -> list[_Page]:
    """TIFFs Pillow cannot decode (e.g. 16-bit RGB, float multi-sample) via tifffile."""
    try:
        import tifffile

        with _quiet_logger("tifffile"), tifffile.TiffFile(io.BytesIO(f.data)) as tif:
            series = tif.series[0]
            shape, axes = tuple(series.shape), series.axes
            if math.prod(shape) > voxel_budget:
                raise ScanError(
                    f"'{f.basename}' has {math.prod(shape):,} values (shape {shape}); at most {MAX_VOXELS:,} are supported."
                )
            arr = np.asarray(series.asarray())
    except ScanError:
        raise
    except Exception as exc:
        raise ScanError(
            f"'{f.basename}' is not a readable TIFF image ({_short(first_error)}; {_short(exc)}); it may be damaged or use an unsupported compression."
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
    _check_image_size(f.basename, width, height, arr.shape[0], voxel_budget)
    if samples == 2:
        arr = arr[..., :1]  # gray + alpha
    elif samples == 4:
        arr = arr[..., :3]  # RGB + alpha
    elif samples not in (1, 3):
        raise ScanError(f"'{f.basename}' has {samples} samples per pixel; only grayscale and RGB images are supported.")
    return [_Page(np.ascontiguousarray(page), "tiff") for page in arr]


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


def _check_image_size(name: str, width: int, height: int, pages: int, voxel_budget: int) -> None:
    if width < MIN_SIDE or height < MIN_SIDE:
        raise ScanError(
            f"'{name}' is only {width}x{height} pixels; at least {MIN_SIDE}x{MIN_SIDE} are needed to segment anything."
        )
    if width * height * 3 * pages > voxel_budget:  # 3: room for RGB, checked before decoding
        if voxel_budget < MAX_VOXELS:
            raise ScanError(
                f"The slices together are too large (over {MAX_VOXELS:,} voxels by '{name}'); upload one case at a time."
            )
        raise ScanError(
            f"'{name}' is {width}x{height} pixels x {pages} page(s), too large; at most {MAX_VOXELS:,} voxels are supported."
        )


def _read_images(files: list[_File], case_name: str, *, in_zip: bool) -> Scan:
    """A single 2D image, or a stack of 2D slices (with optional ``*_mask.*`` files as label)."""
    images: list[_File] = []
    masks: dict[tuple[str, str], _File] = {}
    for f in files:
        stem = _strip_ext(f.basename)
        if _MASK_STEM.search(stem):
            masks[(f.folder, _MASK_STEM.sub("", stem).lower())] = f
        else:
            images.append(f)
    if not images:
        raise ScanError("The upload holds only mask files (*_mask.*); add the images they belong to.")
    folders = sorted({f.folder for f in images})
    if len(folders) > 1:
        shown = ", ".join(f"'{d}'" for d in folders[:4])
        raise ScanError(f"The upload holds images in several folders ({shown}); upload one case (one folder) at a time.")
    images.sort(key=lambda g: _natural_key(g.name))
    if len(images) == 1 and not masks:
        return _read_single_image(images[0])

    budget = MAX_VOXELS
    pages: list[tuple[str, _Page]] = []
    for f in images:
        kind = _sniff(f.data) or _kind_from_name(f.basename) or "png"
        decoded = _decode_image(f, kind, budget)
        for p in decoded:
            budget -= p.pixels.shape[0] * p.pixels.shape[1] * 3
            pages.append((f.basename, p))
    ref_name, ref = pages[0]
    for fname, p in pages[1:]:
        if p.pixels.shape[:2] != ref.pixels.shape[:2]:
            h0, w0 = ref.pixels.shape[:2]
            h, w = p.pixels.shape[:2]
            raise ScanError(
                f"Slice '{fname}' is {w}x{h} pixels but '{ref_name}' is {w0}x{h0}; all slices of a stack must be the same size."
            )
    if all(p.gray_equivalent for _, p in pages):
        array = np.stack([p.gray() for _, p in pages])[None]
        modalities: tuple[str, ...] = (UNSPECIFIED,)
    else:
        rgb = [p.pixels if p.pixels.shape[2] == 3 else np.repeat(p.pixels, 3, axis=2) for _, p in pages]
        array = np.stack(rgb).astype(np.float32).transpose(3, 0, 1, 2)
        modalities = LGG_RGB_MODALITIES

    label = None
    notes: list[str] = []
    if masks:
        mask_files = [masks.get((f.folder, _strip_ext(f.basename).lower())) for f in images]
        if all(m is not None for m in mask_files) and len(pages) == len(images):
            planes = []
            for img, m in zip(images, mask_files, strict=True):
                mpages = _decode_image(m, _sniff(m.data) or _kind_from_name(m.basename) or "png")  # type: ignore[union-attr]
                mp = mpages[0].pixels
                if mp.shape[:2] != ref.pixels.shape[:2]:
                    raise ScanError(f"Mask '{m.basename}' is not the same size as its image '{img.basename}'.")  # type: ignore[union-attr]
                planes.append((mp > 0).any(axis=2))
            label = np.stack(planes).astype(np.uint8)
        else:
            missing = sum(m is None for m in mask_files)
            notes.append(f"masks given for only some slices ({missing} missing); no ground truth loaded")
            logger.warning("Slice stack with incomplete masks; ignoring the masks")
    kinds = {p.kind for _, p in pages}
    single = len(pages) == 1
    # A stack unpacked from a ZIP is reported as "zip"; from a folder or file list, as its image format.
    fmt = "zip" if (in_zip and not single) or len(kinds) > 1 else kinds.pop()
    scan = Scan(
        array=np.ascontiguousarray(array, dtype=np.float32),
        modalities=modalities,
        spacing=(1.0, 1.0, 1.0),
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
        source_format=fmt,
        name=_strip_ext(images[0].basename) if single else case_name,
        is_2d=single,
        label=label,
        meta=_image_meta(array.shape[1:]),
    )
    scan.meta["slice_files"] = [f.basename for f in images]
    if not single:
        notes.append("slice spacing not stored in 2D images; assumed 1 mm")
    for n in notes:
        _note(scan, n)
    return scan


def _read_single_image(f: _File) -> Scan:
    kind = _sniff(f.data) or _kind_from_name(f.basename) or "png"
    pages = _decode_image(f, kind)
    if len(pages) > 1:
        # A multi-page TIFF is a stack of slices.
        return _read_images_pages(f, pages)
    page = pages[0]
    if page.gray_equivalent:
        array = page.gray()[None, None]
        modalities: tuple[str, ...] = (UNSPECIFIED,)
    else:
        array = page.pixels.astype(np.float32).transpose(2, 0, 1)[:, None]
        modalities = LGG_RGB_MODALITIES
    return Scan(
        array=np.ascontiguousarray(array, dtype=np.float32),
        modalities=modalities,
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
        source_format=kind,
        name=_strip_ext(f.basename),
        is_2d=True,
        meta=_image_meta(array.shape[1:]),
    )


def _read_images_pages(f: _File, pages: list[_Page]) -> Scan:
    shapes = {p.pixels.shape[:2] for p in pages}
    if len(shapes) > 1:
        raise ScanError(f"The pages of '{f.basename}' differ in size; a multi-page TIFF must be a stack of equal slices.")
    if all(p.gray_equivalent for p in pages):
        array = np.stack([p.gray() for p in pages])[None]
        modalities: tuple[str, ...] = (UNSPECIFIED,)
    else:
        rgb = [p.pixels if p.pixels.shape[2] == 3 else np.repeat(p.pixels, 3, axis=2) for p in pages]
        array = np.stack(rgb).astype(np.float32).transpose(3, 0, 1, 2)
        modalities = LGG_RGB_MODALITIES
    scan = Scan(
        array=np.ascontiguousarray(array, dtype=np.float32),
        modalities=modalities,
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]),
        source_format="tiff",
        name=_strip_ext(f.basename),
        is_2d=False,
        meta=_image_meta(array.shape[1:]),
    )
    _note(scan, "slice spacing not stored in 2D images; assumed 1 mm")
    return scan


def _image_meta(shape_dhw: tuple[int, ...]) -> dict[str, Any]:
    # Images are taken to be in the display orientation already: identity transform.
    return {
        "ornt": np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0]]),
        "source_shape": (int(shape_dhw[2]), int(shape_dhw[1]), int(shape_dhw[0])),
        "spacing_known": False,
    }


# --------------------------------------------------------------------------------------------
# Validation and mask encoding
# --------------------------------------------------------------------------------------------


def _finish(scan: Scan, modalities: Sequence[str] | None) -> Scan:
    """Checks every scan must pass, whatever the reader: channels, size, finite values, names."""
    c, d, h, w = scan.array.shape
    if c > MAX_CHANNELS:
        raise ScanError(f"'{scan.name}' has {c} channels; at most {MAX_CHANNELS} modalities are supported.")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ScanError(
            f"'{scan.name}' is only {w}x{h} pixels per slice (after orientation); at least {MIN_SIDE}x{MIN_SIDE} "
            "are needed to segment anything."
        )
    finite = np.isfinite(scan.array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise ScanError(
            f"'{scan.name}' contains {bad:,} voxel(s) that are not numbers (NaN or infinite); the file may be damaged "
            "or be a processed map. Replace them (e.g. with 0) and upload again."
        )
    if modalities is not None:
        names = tuple(_canonical_modality(m) for m in modalities)
        if len(names) != c:
            raise ScanError(f"{len(names)} modality names were given ({', '.join(names)}) but '{scan.name}' has {c} channel(s).")
        if len(set(names)) != len(names):
            raise ScanError(f"Modality names must be different, got {', '.join(names)}.")
        scan = replace(scan, modalities=names)
    logger.info("Loaded a %s scan: %d channel(s), %dx%dx%d voxels", scan.source_format, c, d, h, w)
    return scan


def _canonical_modality(name: str) -> str:
    key = str(name).strip().lower().replace("-", "").replace("_", "")
    return _MODALITY_ALIASES.get(key, str(name).strip().lower())


def _check_mask(scan: Scan, mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != tuple(scan.shape):
        raise ValueError(f"mask has shape {mask.shape}, expected the scan's (D, H, W) = {tuple(scan.shape)}")
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
        klass = _nifti_image_class(header)
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


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _note(scan: Scan, text: str) -> None:
    scan.meta.setdefault("notes", []).append(text)


def _strip_ext(name: str) -> str:
    lower = name.lower()
    for ext in (".nii.gz", ".dcm.gz"):
        if lower.endswith(ext):
            return name[: -len(ext)]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and len(ext) <= 5 else name


def _natural_key(name: str) -> list[Any]:
    """Sort key that orders 'x_2' before 'x_10'."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name.lower()) if tok]


def _common_folder(files: Iterable[_File]) -> str:
    """Name of the single top-level folder all files sit in, or ''."""
    tops = {PurePosixPath(f.name).parts[0] if len(PurePosixPath(f.name).parts) > 1 else "" for f in files}
    if len(tops) == 1:
        top = tops.pop()
        return top
    return ""


def _xyz(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape[:3])


def _dtype_words(dtype: np.dtype) -> str:
    if dtype.fields is not None:
        return "colour (RGB)"
    if dtype.kind == "c":
        return "complex-valued"
    return str(dtype)


def _human(nbytes: int) -> str:
    value = float(nbytes)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]
