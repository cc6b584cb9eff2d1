"""Sample scans to try the tool on: built-in synthetic phantoms, and cases from the data root.

Two phantoms are always available, generated deterministically (no files, no network):

* ``phantom-2d``: one 128x128 axial "T1c" slice, read back from PNG bytes as a browser upload would be;
* ``phantom-3d``: a small 24x96x96 "T1c" volume, read back from NIfTI bytes (spacing 3 x 1 x 1 mm).

Each is a bright elliptical "head" with a brighter skull rim, a smooth brain texture and a bright
blob, the "tumor", whose ground-truth mask comes with it. They are not anatomy: they exist so that
the app, the CLI and the REST API can be tried and tested without any patient data.

When a data root is given (or ``BRAINSEG_DATA_ROOT`` is set), cases of the public data sets found
there are listed too, taken from the committed *test* splits only (never training data):
``figshare-<id>`` (one PNG slice), ``lgg-<case>`` (a kaggle_3m case folder) and
``brats2015-<case>`` / ``brats2018-<case>`` (a BraTS case folder), each with its expert mask.

Example:
    >>> from seg_core.samples import list_samples, load_sample
    >>> [s.name for s in list_samples()]
    ['phantom-2d', 'phantom-3d']
    >>> scan, mask = load_sample("phantom-2d")
    >>> scan.shape, mask.shape, int(mask.sum()) > 0
    ((1, 128, 128), (1, 128, 128), True)
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import os
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seg_core.scans import Scan, load_scan

__all__ = [
    "DATA_ROOT_ENV",
    "PHANTOM_2D",
    "PHANTOM_3D",
    "SampleInfo",
    "check_sample_name",
    "default_data_root",
    "list_samples",
    "load_sample",
    "phantom_2d",
    "phantom_3d",
    "sample_file",
]

DATA_ROOT_ENV = "BRAINSEG_DATA_ROOT"
PHANTOM_2D, PHANTOM_3D = "phantom-2d", "phantom-3d"
#: Data-root cases listed per data set (the first ones of its committed test split).
CASES_PER_DATASET = 2
_SPLITS_DIR = Path(__file__).resolve().parent.parent / "splits"


@dataclass(frozen=True)
class SampleInfo:
    """What a sample is, without loading it.

    Attributes:
        name: the id used by :func:`load_sample` (``phantom-2d``, ``figshare-129`` ...).
        title: one line for a menu.
        source: ``"synthetic"`` or the data set's folder name (``figshare``, ``lgg``, ``brats2015``).
        is_2d: one slice (True) or a volume.
        has_mask: a ground-truth mask comes with the scan.
        filename: the file name :func:`sample_file` gives the sample (``.png``, ``.nii.gz`` or ``.zip``).
        license: the terms of the data (phantoms: public domain, generated here).
    """

    name: str
    title: str
    source: str
    is_2d: bool
    has_mask: bool
    filename: str
    license: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_PHANTOMS = {
    PHANTOM_2D: SampleInfo(
        PHANTOM_2D,
        "Synthetic phantom, one 128x128 slice with a bright blob (not a real scan)",
        "synthetic",
        True,
        True,
        "phantom-2d.png",
        "CC0 (generated)",
    ),
    PHANTOM_3D: SampleInfo(
        PHANTOM_3D,
        "Synthetic phantom, a 24x96x96 volume with a bright blob (not a real scan)",
        "synthetic",
        False,
        True,
        "phantom-3d.nii.gz",
        "CC0 (generated)",
    ),
}


# --------------------------------------------------------------------------------------------
# Phantoms
# --------------------------------------------------------------------------------------------


def _phantom(shape: tuple[int, int, int], spacing: tuple[float, float, float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A head-like ellipsoid with a bright blob: intensities ``(D, H, W)`` float32 in [0, 1] and the blob mask uint8."""
    rng = np.random.default_rng(seed)
    depth, height, width = shape
    # Coordinates in mm from the volume's centre, so shapes stay round whatever the spacing.
    z, y, x = np.meshgrid(
        (np.arange(depth) - (depth - 1) / 2) * spacing[0],
        (np.arange(height) - (height - 1) / 2) * spacing[1],
        (np.arange(width) - (width - 1) / 2) * spacing[2],
        indexing="ij",
    )
    radii = np.array([max(depth * spacing[0] * 0.45, 1.0), height * spacing[1] * 0.42, width * spacing[2] * 0.36])
    head = (z / radii[0]) ** 2 + (y / radii[1]) ** 2 + (x / radii[2]) ** 2
    brain = head <= 0.82
    skull = (head > 0.82) & (head <= 1.0)
    # Smooth "tissue" texture: a few low-frequency waves with seeded phases, plus faint noise.
    texture = np.zeros(shape, dtype=np.float64)
    for _ in range(4):
        k = rng.uniform(0.03, 0.09, size=3)
        phase = rng.uniform(0, 2 * np.pi)
        texture += np.cos(k[0] * z + k[1] * y + k[2] * x + phase)
    image = np.where(brain, 0.42 + 0.05 * texture / 4, 0.0) + np.where(skull, 0.85, 0.0)
    # The "tumor": an ellipsoidal blob in the right-anterior brain, clearly brighter than tissue.
    centre = np.array([0.0, -0.25 * radii[1], -0.3 * radii[2]])
    blob_radii = np.array([max(radii[0] * 0.45, spacing[0]), radii[1] * 0.24, radii[2] * 0.3])
    blob = (
        ((z - centre[0]) / blob_radii[0]) ** 2 + ((y - centre[1]) / blob_radii[1]) ** 2 + ((x - centre[2]) / blob_radii[2]) ** 2
    )
    tumor = blob <= 1.0
    image = np.where(tumor, 0.95 - 0.1 * blob, image)
    image = image + rng.normal(0, 0.01, size=shape) * (head <= 1.0)
    return np.clip(image, 0.0, 1.0).astype(np.float32), tumor.astype(np.uint8)


@functools.lru_cache(maxsize=1)
def _phantom_2d_file() -> tuple[bytes, bytes]:
    from PIL import Image

    image, mask = _phantom((1, 128, 128), (1.0, 1.0, 1.0), seed=2)
    buffers = []
    for array in (np.round(image[0] * 255).astype(np.uint8), mask[0] * 255):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        buffers.append(buffer.getvalue())
    return buffers[0], buffers[1]


#: nibabel affine whose voxel axes ``(W, H, D)`` have the display axis codes (L, P, S): the file is
#: already in the view :mod:`seg_core.scans` shows, so the display arrays are the generated ones.
def _display_affine(spacing: tuple[float, float, float]) -> np.ndarray:
    return np.diag([-spacing[2], -spacing[1], spacing[0], 1.0])


@functools.lru_cache(maxsize=1)
def _phantom_3d_file() -> tuple[bytes, bytes]:
    import nibabel as nib

    spacing = (3.0, 1.0, 1.0)
    image, mask = _phantom((24, 96, 96), spacing, seed=3)
    files = []
    for array, dtype in ((image, np.float32), (mask, np.uint8)):
        nifti = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)).astype(dtype), _display_affine(spacing))
        nifti.header.set_xyzt_units("mm")
        nifti.header["descrip"] = b"BrainSeg Studio synthetic phantom"
        # mtime=0: the same bytes on every run and machine.
        files.append(gzip.compress(nifti.to_bytes(), mtime=0))
    return files[0], files[1]


def _mask_from_png(data: bytes) -> np.ndarray:
    from PIL import Image

    return (np.asarray(Image.open(io.BytesIO(data)).convert("L")) > 127).astype(np.uint8)[None]


def phantom_2d() -> tuple[Scan, np.ndarray]:
    """The 2D phantom: a ``Scan`` of one T1c slice ``(1, 1, 128, 128)`` and its mask ``(1, 128, 128)`` uint8."""
    image, mask_png = _phantom_2d_file()
    scan = load_scan(image, name="phantom-2d.png", modalities=("t1c",))
    return scan, _mask_from_png(mask_png)


def phantom_3d() -> tuple[Scan, np.ndarray]:
    """The 3D phantom: a ``Scan`` of one T1c volume ``(1, 24, 96, 96)`` (3 x 1 x 1 mm) and its mask ``(24, 96, 96)`` uint8."""
    image, mask_nifti = _phantom_3d_file()
    scan = load_scan(image, name="phantom-3d.nii.gz", modalities=("t1c",))
    mask = load_scan(mask_nifti, name="phantom-3d_mask.nii.gz").array[0]
    return scan, (mask > 0.5).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Data-root cases (test splits only)
# --------------------------------------------------------------------------------------------


def default_data_root() -> Path | None:
    """``$BRAINSEG_DATA_ROOT`` when it is set and is a folder, else None (the phantoms only)."""
    value = os.environ.get(DATA_ROOT_ENV, "").strip()
    return Path(value) if value and Path(value).is_dir() else None


# BraTS case folders under the data root, with their licenses.
BRATS_SOURCES = {"brats2015": "CC BY-NC-SA 3.0", "brats2018": "BraTS data-use terms (research, non-commercial)"}


def _test_groups(dataset: str) -> list[str]:
    try:
        split = json.loads((_SPLITS_DIR / f"{dataset}.json").read_text())
    except (OSError, ValueError):
        return []
    return [str(g) for g in split.get("test", [])]


def _data_cases(root: Path) -> dict[str, tuple[SampleInfo, Path]]:
    """Sample name -> (info, path) for the test-split cases present under ``root``."""
    cases: dict[str, tuple[SampleInfo, Path]] = {}
    figshare = root / "figshare"
    test_patients = set(_test_groups("figshare"))
    patients_csv = figshare / "patients.csv"
    rows = csv.DictReader(patients_csv.open(newline="")) if patients_csv.is_file() else []
    seen: set[str] = set()
    for row in rows:
        # One slice per test patient, in id order; the local copy may lack some ids.
        if row["patient"] not in test_patients or row["patient"] in seen:
            continue
        case_id = row["id"]
        image, mask = figshare / "images" / f"{case_id}.png", figshare / "masks" / f"{case_id}.png"
        if image.is_file() and mask.is_file():
            seen.add(row["patient"])
            name = f"figshare-{case_id}"
            title = f"Figshare slice {case_id} (T1c, {row['tumor_type']}, test split), with its expert mask"
            cases[name] = (SampleInfo(name, title, "figshare", True, True, f"{name}.png", "CC BY 4.0"), image)
        if len(seen) == CASES_PER_DATASET:
            break
    lgg_folders = [root / "lgg" / layout / case for case in _test_groups("lgg") for layout in ("kaggle_3m", "kaggle_3m_128")]
    for folder in [folder for folder in lgg_folders if folder.is_dir()][:CASES_PER_DATASET]:
        name = f"lgg-{folder.name}"
        title = f"LGG case {folder.name} (stack of axial slices, test split), with its FLAIR abnormality mask"
        cases[name] = (SampleInfo(name, title, "lgg", False, True, f"{name}.zip", "TCIA data use terms"), folder)
    # The first test case of each source: a z-scored 2015 case and a raw-intensity 2018 case.
    brats_folders = [
        next((root / source / case for case in _test_groups("brats") if (root / source / case).is_dir()), None)
        for source in BRATS_SOURCES
    ]
    for folder in [folder for folder in brats_folders if folder is not None]:
        source = folder.parent.name
        name = f"{source}-{folder.name}"
        title = f"BraTS {source[5:]} case {folder.name} (FLAIR, T1c volumes, test split), with its tumor mask"
        cases[name] = (SampleInfo(name, title, source, False, True, f"{name}.zip", BRATS_SOURCES[source]), folder)
    return cases


def _root(data_root: str | os.PathLike[str] | None) -> Path | None:
    if data_root is None:
        return default_data_root()
    root = Path(data_root)
    return root if root.is_dir() else None


def list_samples(data_root: str | os.PathLike[str] | None = None) -> list[SampleInfo]:
    """The samples available: the two phantoms, then the data root's test cases that exist.

    Args:
        data_root: folder holding the public data sets; default ``$BRAINSEG_DATA_ROOT`` (phantoms only when unset).
    """
    root = _root(data_root)
    samples = list(_PHANTOMS.values())
    if root is not None:
        samples += [info for info, _ in _data_cases(root).values()]
    return samples


def _lookup(name: str, data_root: str | os.PathLike[str] | None) -> tuple[SampleInfo, Path]:
    """A data-root case's info and path; ``KeyError`` listing the valid names for anything else."""
    root = _root(data_root)
    cases = _data_cases(root) if root is not None else {}
    if name not in cases:
        valid = ", ".join([*_PHANTOMS, *cases])
        raise KeyError(f"no sample named {name!r}; available: {valid}")
    return cases[name]


def load_sample(name: str, data_root: str | os.PathLike[str] | None = None) -> tuple[Scan, np.ndarray | None]:
    """Load a sample as a :class:`~seg_core.scans.Scan` and its ground-truth mask.

    Args:
        name: one of :func:`list_samples`' names.
        data_root: as for :func:`list_samples`.

    Returns:
        ``(scan, mask)``: the mask is ``(D, H, W)`` uint8 0/1 in the scan's display layout, or None
        when the sample has none.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
        ScanError: a data-root file could not be read.
    """
    if name == PHANTOM_2D:
        return phantom_2d()
    if name == PHANTOM_3D:
        return phantom_3d()
    info, path = _lookup(name, data_root)
    if info.source == "figshare":
        scan = load_scan(path, name=info.name, modalities=("t1c",))
        return scan, _mask_from_png((path.parent.parent / "masks" / path.name).read_bytes())
    scan = load_scan(path, name=info.name)
    mask = None if scan.label is None else (scan.label > 0).astype(np.uint8)
    return scan, mask


def sample_file(name: str, data_root: str | os.PathLike[str] | None = None) -> tuple[str, bytes]:
    """The sample as one file a user could upload: ``(filename, bytes)``.

    Phantoms and Figshare slices are their PNG or NIfTI file; case folders are zipped in memory
    (ground truth included, as the ``*_mask`` / ``OTMultiClass`` files the readers recognise).

    Raises:
        KeyError: unknown name.
    """
    if name == PHANTOM_2D:
        return _PHANTOMS[name].filename, _phantom_2d_file()[0]
    if name == PHANTOM_3D:
        return _PHANTOMS[name].filename, _phantom_3d_file()[0]
    info, path = _lookup(name, data_root)
    if path.is_file():
        return info.filename, path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for member in sorted(path.iterdir()):
            if member.is_file() and not member.name.startswith(".") and member.suffix.lower() != ".txt":
                archive.write(member, f"{path.name}/{member.name}")
    return info.filename, buffer.getvalue()


def check_sample_name(name: str, data_root: str | os.PathLike[str] | None = None) -> SampleInfo:
    """The :class:`SampleInfo` of ``name``; raises ``KeyError`` listing the valid names otherwise."""
    if name in _PHANTOMS:
        return _PHANTOMS[name]
    return _lookup(name, data_root)[0]
