"""The readers, and how one is picked for an upload (the way MONAI's ``LoadImage`` picks an ImageReader).

Every file is classified by :func:`~seg_core.scans.detect.detect` (ZIPs inside a multi-file upload
and gzip-wrapped files are unpacked first). The files fall into families, one per reader ``kinds``;
an upload must hold one family. Its readers are then asked in the order of :data:`READERS`, and
the first whose ``can_read`` says yes reads the files. Adding a format: one module with a reader
class, and one line in :data:`READERS`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .archive import ZipReader, gunzip_file, unpack_zip
from .base import FileGroup, ScanReader
from .brats import BratsReader
from .detect import detect
from .dicom import DicomReader
from .files import ScanFile
from .images import ImageReader
from .lgg import SliceStackReader
from .limits import SUPPORTED_FORMATS, ScanError, UnpackTally
from .nifti import NiftiReader
from .scan import Scan, add_note

logger = logging.getLogger(__name__)

#: Asked in this order within a family; the order of families is the order of the mixed-upload message.
READERS: tuple[ScanReader, ...] = (
    ZipReader(),
    NiftiReader(),
    BratsReader(),
    DicomReader(),
    ImageReader(),
    SliceStackReader(),
)


@dataclass
class _SortedFiles:
    """An upload's files by reader family (keyed by the family's ``kinds``), and the names left out."""

    families: dict[frozenset[str], list[ScanFile]]
    guessed: dict[frozenset[str], list[ScanFile]]
    skipped: list[str] = field(default_factory=list)

    @classmethod
    def empty(cls) -> _SortedFiles:
        families = {reader.kinds: [] for reader in READERS}
        guessed = {reader.kinds: [] for reader in READERS if reader.guessed_kinds}
        return cls(families, guessed)

    def add(self, kind: str, f: ScanFile) -> None:
        for reader in READERS:
            if kind in reader.kinds:
                self.families[reader.kinds].append(f)
                return
            if kind in reader.guessed_kinds:
                self.guessed[reader.kinds].append(f)
                return


def read_files(files: list[ScanFile], *, case_name: str, from_archive: bool, depth: int = 0) -> Scan:
    """Classify the files (unpacking ZIPs and gzip-wrapped files) and run the reader that claims them."""
    single = len(files) == 1 and not from_archive
    sorted_files = _sort_files(files, single=single, depth=depth)
    family = _one_family(sorted_files)
    group = FileGroup(sorted_files.families[family], case_name, single=single, depth=depth)
    reader = next(r for r in READERS if r.kinds == family and r.can_read(group))
    scan = reader.read(group)
    skipped = sorted_files.skipped
    if skipped:
        scan.meta["ignored_files"] = sorted(skipped)
        add_note(scan, f"ignored {len(skipped)} file(s) that are not scans")
    return scan


def _sort_files(files: list[ScanFile], *, single: bool, depth: int) -> _SortedFiles:
    out = _SortedFiles.empty()
    # A ZIP uploaded alone goes to ZipReader; ZIPs among other files are unpacked here; ZIPs in a ZIP are skipped.
    zips = "read" if depth == 0 and len(files) == 1 else "unpack" if depth == 0 else "skip"
    _sort_into(files, out, UnpackTally(), strict=single, zips=zips)
    return out


def _sort_into(files: list[ScanFile], out: _SortedFiles, unpacked: UnpackTally, *, strict: bool, zips: str) -> None:
    """Detect each file's kind and add it to its family; ``strict`` raises where others would skip."""
    for f in files:
        try:
            kind = detect(f)
        except ScanError:
            if strict:
                raise
            out.skipped.append(f.basename)
            continue
        if kind in ZipReader.kinds and zips != "read":
            if zips == "skip":
                out.skipped.append(f.basename)
                continue
            inner = unpack_zip(f)
            unpacked.add(sum(len(g.data) for g in inner))
            _sort_into(inner, out, unpacked, strict=False, zips="skip")
            continue
        if kind == "gzip":
            kind, f = gunzip_file(f, strict=strict)
            unpacked.add(len(f.data) if kind not in ("nifti.gz", None) else 0)
            if kind is None:
                out.skipped.append(f.basename)
                continue
        out.add(kind, f)


def _one_family(sorted_files: _SortedFiles) -> frozenset[str]:
    """The one family the upload holds; raises when it holds none or several."""
    families, skipped = sorted_files.families, sorted_files.skipped
    for family, guessed in sorted_files.guessed.items():
        # Files without a recognisable signature are tried only when nothing else claims the upload.
        if guessed and not any(files for other, files in families.items() if other != family):
            families[family].extend(guessed)
        else:
            skipped.extend(g.basename for g in guessed)
    present = [family for family, files in families.items() if files]
    if not present:
        listed = ", ".join(sorted(skipped)[:8]) + (" ..." if len(skipped) > 8 else "")
        raise ScanError(f"None of the files could be used ({listed}). Supported: {SUPPORTED_FORMATS}.")
    if len(present) > 1:
        words = {reader.kinds: reader.what for reader in READERS}
        raise ScanError(
            f"The upload mixes {' and '.join(words[k] for k in present)}; upload one scan (one kind of file) at a time."
        )
    if skipped:
        logger.info("Ignored %d file(s) that are not images", len(skipped))
    return present[0]
