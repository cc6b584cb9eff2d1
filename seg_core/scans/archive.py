"""ZIP archives and gzip-wrapped files: unpacked in memory, refusing unsafe names and bombs."""

from __future__ import annotations

import io
import logging
import re
import stat
import zipfile
import zlib
from pathlib import PurePosixPath
from typing import ClassVar

from . import limits
from .base import FileGroup
from .detect import detect, looks_like_raw_dicom, nifti_magic
from .files import JUNK_NAMES, ScanFile, common_folder, strip_ext
from .limits import SUPPORTED_FORMATS, ScanError, gunzip, human_bytes
from .scan import Scan

logger = logging.getLogger(__name__)


class ZipReader:
    """A ZIP uploaded on its own: unpacked, and its files read as if uploaded together."""

    kinds: ClassVar[frozenset[str]] = frozenset({"zip"})
    guessed_kinds: ClassVar[frozenset[str]] = frozenset()
    what: ClassVar[str] = "ZIP archives"

    def can_read(self, group: FileGroup) -> bool:
        return len(group.files) == 1 and group.depth == 0

    def read(self, group: FileGroup) -> Scan:
        from .registry import read_files  # the registry lists this reader: import when called

        archive = group.files[0]
        inner = unpack_zip(archive)
        name = common_folder(inner) or strip_ext(archive.basename)
        scan = read_files(inner, case_name=name, from_archive=True, depth=group.depth + 1)
        scan.meta.setdefault("archive", archive.basename)
        return scan


def unpack_zip(f: ScanFile) -> list[ScanFile]:
    """The archive's files; raises ScanError for an empty archive too."""
    inner = _read_zip(f)
    if not inner:
        raise ScanError(f"'{f.basename}' is an empty ZIP archive.")
    return inner


def _read_zip(f: ScanFile) -> list[ScanFile]:
    """Unpack a ZIP in memory, refusing unsafe names and enforcing the size caps while reading."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(f.data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        # NotImplementedError: a damaged end record can read as a multi-disk archive.
        raise ScanError(f"'{f.basename}' is not a readable ZIP archive ({exc}); it may be truncated or damaged.") from None
    with zf:
        members = _checked_members(zf, f.basename)
        out: list[ScanFile] = []
        budget = limits.MAX_UNCOMPRESSED
        for info in members:
            inner = info.filename.replace("\\", "/")
            parts = PurePosixPath(inner).parts
            if any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in JUNK_NAMES:
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                logger.warning("Skipped a symbolic link inside a ZIP upload")
                continue
            if info.flag_bits & 0x1:
                raise ScanError(f"'{inner}' in '{f.basename}' is password-protected; upload an unencrypted ZIP.")
            data = _read_zip_member(zf, info, f.basename, budget)
            budget -= len(data)
            out.append(ScanFile(inner, data))
    return out


def _checked_members(zf: zipfile.ZipFile, archive: str) -> list[zipfile.ZipInfo]:
    """The archive's file entries, after the checks its directory allows: count, names, declared size."""
    infos = zf.infolist()
    members = [i for i in infos if not i.is_dir()]
    if len(members) > limits.MAX_FILES:
        raise ScanError(f"'{archive}' holds {len(members)} files; at most {limits.MAX_FILES} are accepted.")
    for info in infos:
        _check_zip_name(archive, info.filename)
    declared = sum(i.file_size for i in members)
    if declared > limits.MAX_UNCOMPRESSED:
        raise ScanError(
            f"'{archive}' would unpack to {human_bytes(declared)}, more than the {human_bytes(limits.MAX_UNCOMPRESSED)} "
            "allowed; upload one case at a time."
        )
    return members


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
                        raise ScanError(
                            f"'{archive}' unpacks to more than {human_bytes(limits.MAX_UNCOMPRESSED)}; it was refused."
                        )
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


def gunzip_file(f: ScanFile, *, strict: bool) -> tuple[str | None, ScanFile]:
    """Classify a gzip file: a .nii.gz stays compressed (read later with a header-driven cap);
    anything else (e.g. .dcm.gz) is decompressed here and sniffed.

    Returns (kind, file); kind is None for a file to skip (``strict`` raises instead).
    """
    head = gunzip(f.data, f.basename, 4096, partial=True)
    if nifti_magic(head) in ("nifti1", "nifti2"):
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
        head_kind = detect(ScanFile(inner_name, head))
        if head_kind == "dicom?" and not looks_like_raw_dicom(head):
            raise ScanError(
                f"'{f.basename}' is gzip-compressed but what it holds is not a DICOM file or any other supported file. "
                f"Supported: {SUPPORTED_FORMATS}."
            )
    except ScanError:
        if strict:
            raise
        return None, ScanFile(inner_name, b"")
    inner = ScanFile(inner_name, gunzip(f.data, f.basename, limits.MAX_UNCOMPRESSED))
    try:
        kind = detect(inner)
    except ScanError:
        if strict:
            raise
        return None, inner
    if kind in ("zip", "gzip"):
        if strict:
            raise ScanError(f"'{f.basename}' holds another archive inside; please upload a single ZIP.")
        return None, inner
    return kind, inner
