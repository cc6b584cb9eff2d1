"""Finding the cases of a cohort: a folder of scans, several folders, or a CSV of paths.

One case is what :func:`seg_core.scans.load_scan` reads as one scan:

* a sub-folder (a BraTS case, an LGG ``kaggle_3m`` stack of slices, a DICOM series) is one case,
  and its ground truth is whatever the reader finds inside (``Scan.label``);
* a loose file (``.png``, ``.nii.gz``, ``.dcm``, ``.zip`` ...) is one case. Its ground truth is a
  file beside it named ``<stem>_mask``, ``<stem>_seg`` or ``<stem>_label`` (any supported
  extension), or the file of the same name in a sibling ``masks/`` folder when the scan sits in
  ``images/`` (the Figshare layout). Such ground-truth files are never cases themselves;
* a folder holding only the files of one scan (a BraTS case folder given directly, a DICOM series,
  a stack of slices named ``<case>_<n>`` as in LGG ``kaggle_3m``) is itself one case.

A CSV names its cases explicitly: a ``path`` column (relative paths are taken from the CSV's
folder), and optional ``truth`` and ``case`` columns.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: File name endings a scan (or its ground truth) may have; everything else in a folder is ignored.
SCAN_SUFFIXES = (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".zip", ".gz")
#: Stem endings that mark a ground-truth file beside its scan.
TRUTH_MARKERS = ("_mask", "_seg", "_label", "_labels", "_gt")
#: Files in a case folder that are not images (licenses, notes) and never make a folder a cohort.
_NOT_SCANS = re.compile(r"\.(txt|md|csv|json|html?)$", re.IGNORECASE)
#: A slice of a stack: ``<case>_<n>``.
_SLICE_NAME = re.compile(r"^(.+)_(\d+)$")


class CohortError(ValueError):
    """The cohort's input (folder or CSV) cannot be used: missing, empty, or a malformed CSV."""


@dataclass(frozen=True)
class Case:
    """One scan of a cohort.

    Attributes:
        name: unique, file-name-safe name (also the mask's file name).
        paths: the file or folder to read, as :func:`seg_core.scans.load_scan` takes it.
        truth: a separate ground-truth file, or None (the scan may still carry its own ``label``).
    """

    name: str
    paths: tuple[str, ...]
    truth: str | None = None


def file_suffix(path: Path) -> str:
    """The format's suffix, ``.nii.gz`` counted as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _stem(path: Path) -> str:
    suffix = file_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.name


def is_scan_file(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and file_suffix(path) in SCAN_SUFFIXES


def is_truth_file(path: Path) -> bool:
    stem = _stem(path).lower()
    return is_scan_file(path) and any(stem.endswith(marker) for marker in TRUTH_MARKERS)


def safe_name(text: str) -> str:
    """``text`` as one file name: path separators and odd characters become ``_``, never ``..``.

    Case names come from folder and file names a user controls; a mask is written under this name,
    so it must not climb out of the output folder.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:120] or "case"


def truth_beside(scan: Path) -> Path | None:
    """The ground-truth file of a loose scan file (module docstring), or None."""
    stem, suffix = _stem(scan), file_suffix(scan)
    for marker in TRUTH_MARKERS:
        for candidate_suffix in dict.fromkeys((suffix, *SCAN_SUFFIXES)):
            candidate = scan.with_name(f"{stem}{marker}{candidate_suffix}")
            if candidate.is_file():
                return candidate
    if scan.parent.name.lower() == "images":
        sibling = scan.parent.parent / "masks" / scan.name
        if sibling.is_file():
            return sibling
    return None


def _is_single_case_folder(folder: Path) -> bool:
    """A folder without sub-folders whose files are one scan: a BraTS case, or slices of one stack."""
    from seg_core.data import BratsDataset

    if any(child.is_dir() for child in folder.iterdir()):
        return False
    if BratsDataset.layout_of(folder) is not None:
        return True
    files = [path for path in folder.iterdir() if is_scan_file(path)]
    if not files:
        return False
    # A DICOM series: every file is .dcm.
    if all(file_suffix(path) == ".dcm" for path in files):
        return True
    # A stack of slices in the LGG kaggle_3m naming, <case>_<n>.tif (+ <case>_<n>_mask.tif): one
    # common prefix and a slice number on every image. Plain numbered files (Figshare's 1.png) are not.
    prefixes = {
        match.group(1) if (match := _SLICE_NAME.match(_stem(path))) else None for path in files if not is_truth_file(path)
    }
    return len(prefixes) == 1 and None not in prefixes


def _folder_cases(folder: Path) -> list[Case]:
    if _is_single_case_folder(folder):
        return [Case(safe_name(folder.name), (str(folder),))]
    cases = []
    for child in sorted(folder.iterdir(), key=lambda p: p.name):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if child.name.lower() == "masks" and (folder / "images").is_dir():
                continue  # the ground truth of images/, found by truth_beside
            if child.name.lower() == "images" or any(grand.is_dir() for grand in child.iterdir()):
                prefix = "" if child.name.lower() == "images" else f"{child.name}_"
                cases += [Case(safe_name(prefix + c.name), c.paths, c.truth) for c in _folder_cases(child)]
            elif any(is_scan_file(p) for p in child.iterdir()):
                cases.append(Case(safe_name(child.name), (str(child),)))  # one scan: a BraTS case, an LGG stack
        elif is_scan_file(child) and not is_truth_file(child) and not _NOT_SCANS.search(child.name):
            truth = truth_beside(child)
            cases.append(Case(safe_name(_stem(child)), (str(child),), str(truth) if truth else None))
    return cases


def _csv_cases(table: Path) -> list[Case]:
    with table.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "path" not in reader.fieldnames:
            raise CohortError(
                f"{table}: a cohort CSV needs a 'path' column (optional: 'truth', 'case'); found {reader.fieldnames}"
            )
        rows = list(reader)
    cases = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        if not (row.get("path") or "").strip():
            raise CohortError(f"{table}, line {number}: empty 'path'")
        path = (table.parent / row["path"].strip()).resolve()
        truth = (row.get("truth") or "").strip()
        name = (row.get("case") or "").strip() or _stem(path)
        cases.append(Case(safe_name(name), (str(path),), str((table.parent / truth).resolve()) if truth else None))
    return cases


def find_cases(inputs: Sequence[str | Path] | str | Path) -> list[Case]:
    """The cases of one or more folders / CSV files, in a stable order, with unique names.

    Raises:
        CohortError: an input is missing, or none of them holds a case.
    """
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    cases: list[Case] = []
    for item in inputs:
        path = Path(item)
        if not path.exists():
            raise CohortError(f"{path}: no such file or folder")
        if path.is_dir():
            cases += _folder_cases(path)
        elif path.suffix.lower() == ".csv":
            cases += _csv_cases(path)
        elif is_scan_file(path):
            truth = truth_beside(path)
            cases.append(Case(safe_name(_stem(path)), (str(path),), str(truth) if truth else None))
        else:
            raise CohortError(f"{path}: give a folder of scans, a scan file or a CSV with a 'path' column")
    if not cases:
        raise CohortError(f"no scans found in {', '.join(str(i) for i in inputs)}")
    return _unique(cases)


def _unique(cases: Iterable[Case]) -> list[Case]:
    """Cases with distinct names: a repeated name (two inputs with a ``case_1``) gets ``-2``, ``-3`` ..."""
    seen: dict[str, int] = {}
    unique = []
    for case in cases:
        count = seen.get(case.name, 0) + 1
        seen[case.name] = count
        unique.append(case if count == 1 else Case(f"{case.name}-{count}", case.paths, case.truth))
    return unique


def input_sha256(case: Case) -> str:
    """sha256 over the case's files (names relative to the case and contents), the key of resuming."""
    digest = hashlib.sha256()
    files: list[tuple[str, Path]] = []
    for item in (*case.paths, *([case.truth] if case.truth else [])):
        path = Path(item)
        if path.is_dir():
            files += [(str(f.relative_to(path)), f) for f in sorted(path.rglob("*")) if f.is_file()]
        else:
            files.append((path.name, path))
    for relative, path in files:
        digest.update(relative.encode() + b"\0")
        try:
            with path.open("rb") as handle:
                for chunk in iter(lambda h=handle: h.read(1 << 20), b""):
                    digest.update(chunk)
        except OSError as error:  # unreadable: hashed by its message, so the case runs and reports it
            digest.update(f"unreadable: {error}".encode())
    return digest.hexdigest()


def group_sha256(dataset: Any, group: str) -> str | None:
    """:func:`input_sha256` of a dataset adapter's group (a patient's folder, or Figshare's image and mask files).

    None where the adapter does not say which files a group reads (COCO): such a group is never skipped.
    """
    if hasattr(dataset, "folder_of"):
        return input_sha256(Case(group, (str(dataset.folder_of(group)),)))
    if hasattr(dataset, "case_ids") and hasattr(dataset, "images_dir"):
        ids = dataset.case_ids(group)
        files = [str(folder / f"{i}.png") for i in ids for folder in (dataset.images_dir, dataset.masks_dir)]
        return input_sha256(Case(group, tuple(files)))
    return None
