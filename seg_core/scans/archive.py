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
from .detect import detect, dicom_meta_follows, looks_like_raw_dicom, nifti_magic
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
        room = limits.MAX_UNCOMPRESSED  # bytes the members may still unpack to
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
            data = _read_zip_member(zf, info, f.basename, room)
            room -= len(data)
            out.append(ScanFile(inner, data))
            del data
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


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, room: int) -> bytes:
    """A member's bytes, counted as they are inflated (the header's size is a claim, not a fact).

    A member that cannot be part of a scan by its first 4 KiB (no signature, a nested archive) is
    kept as those 4 KiB only: the readers skip it from them alone, so a ZIP of zeros costs 4 KiB,
    not its full expansion. Everything read is charged to the upload's decode budget (:mod:`.budget`):
    the declared size first, then the bytes that really come out.
    """
    from .budget import charge, refund

    limit = min(info.file_size, room)
    out = io.BytesIO()  # grows in place; getvalue() hands its buffer over without a copy
    total = 0
    charged = 0
    try:
        with zf.open(info) as stream:
            head = stream.read(_SNIFF_BYTES)
            total = len(head)
            if total > limit:
                _raise_larger(info, archive, total, room)
            charged = total
            charge(charged)
            if len(head) < _SNIFF_BYTES or _skipped_from_head(info.filename, head):
                return head
            charge(limit - charged)  # the declared size: a bomb is refused before it inflates
            charged = limit
            out.write(head)
            del head
            while chunk := stream.read(_ZIP_CHUNK):
                total += len(chunk)
                if total > limit:
                    _raise_larger(info, archive, total, room)
                out.write(chunk)
    except ScanError:
        raise
    except NotImplementedError:
        raise ScanError(
            f"'{info.filename}' in '{archive}' uses a compression method that cannot be read; re-create the ZIP."
        ) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, ValueError) as exc:
        raise ScanError(f"'{info.filename}' in '{archive}' is damaged ({exc}).") from None
    refund(charged - total)  # the member was shorter than declared
    return out.getvalue()


#: Bytes read from a ZIP member before deciding whether to inflate the rest, and per read after.
_SNIFF_BYTES = 4096
_ZIP_CHUNK = 1 << 20


def _raise_larger(info: zipfile.ZipInfo, archive: str, total: int, room: int) -> None:
    if total > room:
        raise ScanError(f"'{archive}' unpacks to more than {human_bytes(limits.MAX_UNCOMPRESSED)}; it was refused.")
    raise ScanError(f"'{info.filename}' in '{archive}' is larger than the archive says; the ZIP is damaged or crafted.")


def _skipped_from_head(name: str, head: bytes) -> bool:
    """True when the readers would skip this ZIP member whatever follows its first bytes."""
    try:
        kind = detect(ScanFile(name, head))
    except ScanError:
        return True  # not a supported file: detect decides from the first bytes and the name only
    # A nested archive is never read; a file without a signature is tried as DICOM only when it
    # starts like a DICOM data set (as gunzip_file decides for a .gz).
    return (
        kind == "zip"
        or (kind == "dicom?" and not looks_like_raw_dicom(head))
        or (kind == "dicom" and not dicom_meta_follows(head))
    )


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
        if (head_kind == "dicom?" and not looks_like_raw_dicom(head)) or (head_kind == "dicom" and not dicom_meta_follows(head)):
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
