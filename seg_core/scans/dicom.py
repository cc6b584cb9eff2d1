"""DICOM: one file, a series (folder, file list or ZIP), classic or enhanced multi-frame (pydicom).

Frames are grouped into series (SeriesInstanceUID, size, orientation), the largest is kept, sorted
along the slice normal and put into the display layout from ImageOrientationPatient /
ImagePositionPatient. Files without a DICOM signature are tried only when nothing else claims the upload.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import limits
from .base import FileGroup
from .budget import charge
from .detect import dicom_meta_follows
from .dicom_pixels import as_float, decode_frames
from .files import ScanFile, natural_key
from .limits import SUPPORTED_FORMATS, ScanError, exception_summary
from .orientation import volume_scan
from .scan import UNSPECIFIED, Scan, add_note

logger = logging.getLogger(__name__)

#: What a damaged header raises where pydicom first decodes an element (values are read lazily).
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


class DicomReader:
    """A DICOM file or series, as one grayscale volume in the display layout."""

    kinds: ClassVar[frozenset[str]] = frozenset({"dicom"})
    guessed_kinds: ClassVar[frozenset[str]] = frozenset({"dicom?"})
    what: ClassVar[str] = "DICOM files"

    def can_read(self, group: FileGroup) -> bool:
        return True

    def read(self, group: FileGroup) -> Scan:
        try:
            return _read_dicom(group.files, group.case_name, single=group.single)
        except ScanError:
            raise
        except _DICOM_DECODE_ERRORS as exc:
            # pydicom decodes element values lazily: a damaged header fails wherever it is first read.
            # Only the type is shown; the message could quote a value (e.g. a name).
            raise ScanError(
                f"A DICOM header in the upload is damaged ({type(exc).__name__} while reading its attributes); "
                "export the series again or upload other files."
            ) from None


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


def _read_dicom(files: list[ScanFile], case_name: str, *, single: bool) -> Scan:
    datasets = _read_datasets(files, single=single)
    frames = [frame for fname, ds in datasets.images for frame in _dicom_frames(fname, ds)]
    ordered = _series(frames)
    chosen = ordered[0]
    notes = datasets.notes()
    if len(ordered) > 1:
        notes.insert(0, f"the upload holds {len(ordered)} DICOM series or stacks; using the largest ({len(chosen)} slices)")
        logger.info("DICOM upload with %d series; using the largest (%d frames)", len(ordered), len(chosen))
    _check_series(chosen)

    chosen, order_note, slice_step, duplicates = _sort_frames(chosen)
    if order_note:
        notes.append(order_note)
    if duplicates:
        notes.append(f"dropped {duplicates} slice(s) repeated at the same position")
    pixels = decode_frames(chosen)  # (n, rows, cols) float32
    first = chosen[0]
    if first.pixel_spacing is None:
        notes.append("pixel spacing not given; assumed 1 mm")
    data = pixels.transpose(2, 1, 0)[..., None]  # (cols, rows, slices, 1): the affine's voxel order
    affine = _series_affine(chosen, slice_step)
    scan = volume_scan(data, affine, name=case_name, source_format="dicom", modalities=(UNSPECIFIED,))
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
        add_note(scan, n)
    return scan


@dataclass
class _Datasets:
    """The parsed files of an upload: those with images, and counts of those left out."""

    images: list[tuple[str, Any]]
    no_pixels: int  # e.g. DICOMDIR, reports, presentation states
    stripped: list[str]  # image attributes without pixel data: truncated, or the image was removed
    unreadable: list[str]

    def notes(self) -> list[str]:
        notes: list[str] = []
        if self.unreadable:
            notes.append(f"skipped {len(self.unreadable)} unreadable file(s)")
        if self.no_pixels or self.stripped:
            notes.append(f"skipped {self.no_pixels + len(self.stripped)} DICOM file(s) without image data")
        return notes


def _read_datasets(files: list[ScanFile], *, single: bool) -> _Datasets:
    """Parse every file; raises when none holds an image."""
    import pydicom  # heavy, only needed for DICOM

    found = _Datasets([], 0, [], [])
    for f in sorted(files, key=lambda g: natural_key(g.name)):
        has_preamble = len(f.data) >= 132 and f.data[128:132] == b"DICM"
        if has_preamble and not dicom_meta_follows(f.data):
            # pydicom would parse what follows element by element (minutes for a file of zeros).
            if single:
                raise ScanError(
                    f"'{f.basename}' has a DICOM signature but no DICOM header after it; it is damaged or not a DICOM file."
                )
            found.unreadable.append(f.basename)
            continue
        # pydicom copies each element's value out of the file: at most the file's size, charged first.
        charge(len(f.data))
        try:
            ds = pydicom.dcmread(io.BytesIO(f.data), force=not has_preamble)
        except Exception as exc:
            if single and has_preamble:
                raise ScanError(
                    f"'{f.basename}' is not a readable DICOM file ({exception_summary(exc)}); it may be truncated or damaged."
                ) from None
            found.unreadable.append(f.basename)
            continue
        if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            if not has_preamble and "SOPClassUID" not in ds:
                found.unreadable.append(f.basename)  # forced parse of something that is not DICOM at all
            elif "Rows" in ds:
                found.stripped.append(f.basename)
            else:
                found.no_pixels += 1
            continue
        if "Rows" not in ds or "Columns" not in ds:
            found.unreadable.append(f.basename)
            continue
        found.images.append((f.basename, ds))
    if not found.images:
        _raise_no_images(found, files, single=single)
    return found


def _raise_no_images(found: _Datasets, files: list[ScanFile], *, single: bool) -> None:
    if found.stripped:
        raise ScanError(
            f"'{found.stripped[0]}' describes an image but holds no pixel data: the file is probably truncated, "
            "or its image was removed. Please upload the complete DICOM files."
        )
    if found.no_pixels:
        raise ScanError(
            "The DICOM file(s) hold no image data (e.g. a DICOMDIR index, a report or a structured report); "
            "upload the image files of the series."
        )
    if single:
        raise ScanError(f"'{files[0].basename}' is not a supported file type. Supported: {SUPPORTED_FORMATS}.")
    raise ScanError(f"No readable DICOM images found ({', '.join(found.unreadable[:5])}); the files may be damaged or not DICOM.")


def _series(frames: list[_Frame]) -> list[list[_Frame]]:
    """Frames grouped by series, size and orientation; the largest group first."""
    series: dict[tuple[Any, ...], list[_Frame]] = {}
    for fr in frames:
        ds = fr.dataset
        iop = tuple(np.round(fr.orientation, 3)) if fr.orientation is not None else None
        key = (str(ds.get("SeriesInstanceUID", "")), int(ds.Rows), int(ds.Columns), iop)
        series.setdefault(key, []).append(fr)
    return sorted(series.values(), key=len, reverse=True)


def _check_series(chosen: list[_Frame]) -> None:
    """The voxel limit, and grayscale only, before any pixel data is decoded."""
    rows, cols = int(chosen[0].dataset.Rows), int(chosen[0].dataset.Columns)
    voxels = rows * cols * len(chosen)
    if voxels > limits.MAX_VOXELS:
        raise ScanError(
            f"The DICOM series has {voxels:,} voxels ({len(chosen)} slices of {cols}x{rows}); "
            f"at most {limits.MAX_VOXELS:,} are supported."
        )
    for fr in chosen:
        if int(fr.dataset.get("SamplesPerPixel", 1)) != 1:
            raise ScanError(f"'{fr.source}' is a colour DICOM image (e.g. a screenshot or secondary capture), not grayscale MRI.")


def _series_affine(chosen: list[_Frame], slice_step: float) -> np.ndarray:
    """Voxel (column, row, slice) -> RAS+ mm, from the first frame's orientation and the slice positions."""
    first = chosen[0]
    row_dir, col_dir = _dicom_directions(first)
    dr, dc = first.pixel_spacing or (1.0, 1.0)
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
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps  # DICOM patient space is LPS; NIfTI world is RAS


def _dicom_frames(fname: str, ds: Any) -> list[_Frame]:
    """One _Frame per 2D image in a dataset (classic single-frame or enhanced multi-frame)."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    thickness = as_float(ds.get("SliceThickness"))
    between = as_float(ds.get("SpacingBetweenSlices"))
    base = {
        "position": _vector(ds.get("ImagePositionPatient"), 3),
        "orientation": _vector(ds.get("ImageOrientationPatient"), 6),
        "pixel_spacing": _pair(ds.get("PixelSpacing")),
        "slope": as_float(ds.get("RescaleSlope")) or 1.0,
        "intercept": as_float(ds.get("RescaleIntercept")) or 0.0,
        "instance": int(as_float(ds.get("InstanceNumber")) or 0),
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
            frame_thickness = as_float(measures.get("SliceThickness")) or thickness
            frame_between = as_float(measures.get("SpacingBetweenSlices")) or between
        transform = _functional_item(ds, i, "PixelValueTransformationSequence")
        if transform is not None:
            info["slope"] = as_float(transform.get("RescaleSlope")) or 1.0
            info["intercept"] = as_float(transform.get("RescaleIntercept")) or 0.0
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
