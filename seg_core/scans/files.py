"""Input collection: a path, bytes, an upload object or a list of them becomes a list of in-memory files."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from . import limits
from .limits import ScanError, human_bytes

#: Files operating systems leave in folders and archives; never part of a scan.
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class ScanFile:
    """One file of an upload, held in memory."""

    name: str  # posix path inside the upload, used for messages, sorting and grouping
    data: bytes

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name

    @property
    def folder(self) -> str:
        return str(PurePosixPath(self.name).parent)


def collect_source(source: Any, name: str | None) -> tuple[list[ScanFile], str, bool]:
    """Returns (files, display name, whether the files came from a multi-file container)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        fname = name or "upload"
        return [ScanFile(safe_display_name(fname), data)], strip_ext(PurePosixPath(fname).name), False
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            return read_folder(path), name or path.name, True
        return [read_path(path)], name or strip_ext(path.name), False
    if is_upload_object(source):
        fname = getattr(source, "name", None) or name or "upload"
        return [ScanFile(safe_display_name(fname), upload_bytes(source))], name or strip_ext(PurePosixPath(fname).name), False
    if isinstance(source, list | tuple):
        return _collect_list(source, name)
    raise ScanError(
        f"Cannot read a {type(source).__name__}: give a path, the file's bytes, or a list of (filename, bytes) pairs or paths."
    )


def _collect_list(source: list[Any] | tuple[Any, ...], name: str | None) -> tuple[list[ScanFile], str, bool]:
    """A multi-file upload: ``(filename, bytes)`` pairs, paths and upload objects, in any mix."""
    files: list[ScanFile] = []
    total = 0
    if len(source) > limits.MAX_FILES:
        raise ScanError(f"The upload has {len(source)} files; at most {limits.MAX_FILES} are accepted.")
    for item in source:
        f = _list_item(item)
        total += len(f.data)
        if total > limits.MAX_UNCOMPRESSED:
            raise ScanError(f"The upload is larger than {human_bytes(limits.MAX_UNCOMPRESSED)}; that is too large for one scan.")
        files.append(f)
    if len(files) == 1:
        only = files[0]
        return files, name or strip_ext(only.basename), False
    parents = {Path(item).resolve().parent.name for item in source if isinstance(item, str | os.PathLike)}
    fallback = (
        parents.pop()
        if len(parents) == 1 and len(files) == len(source) and all(isinstance(item, str | os.PathLike) for item in source)
        else "upload"
    )
    return files, name or common_folder(files) or fallback, True


def _list_item(item: Any) -> ScanFile:
    if isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], bytes | bytearray | memoryview):
        return ScanFile(safe_display_name(str(item[0])), bytes(item[1]))
    if isinstance(item, str | os.PathLike):
        p = Path(item)
        if p.is_dir():
            raise ScanError(f"'{p.name}' is a folder; upload a folder on its own, or its files.")
        return read_path(p)
    if is_upload_object(item):
        return ScanFile(safe_display_name(str(item.name)), upload_bytes(item))
    raise ScanError(f"Each item of a multi-file upload must be a (filename, bytes) pair or a path, not {type(item).__name__}.")


def is_upload_object(obj: Any) -> bool:
    """True for an object with ``.name`` and ``.getvalue()``, such as a Streamlit ``UploadedFile``."""
    return hasattr(obj, "getvalue") and hasattr(obj, "name") and not isinstance(obj, str | bytes)


def upload_bytes(obj: Any) -> bytes:
    data = obj.getvalue()
    if len(data) > limits.MAX_UNCOMPRESSED:
        raise ScanError(f"'{obj.name}' is larger than {human_bytes(limits.MAX_UNCOMPRESSED)}; that is too large for one scan.")
    return bytes(data)


def safe_display_name(name: str) -> str:
    # Only used for messages, sorting and role detection; never to open a file.
    return name.replace("\\", "/").lstrip("/") or "upload"


def read_path(path: Path) -> ScanFile:
    """One regular file from disk, refused before reading when larger than the upload limit."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ScanError(f"File not found: '{path}'.") from None
    except OSError as exc:
        raise ScanError(f"Cannot open '{path}': {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise ScanError(f"'{path}' is not a regular file.")
    if st.st_size > limits.MAX_UNCOMPRESSED:
        raise ScanError(
            f"'{path.name}' is {human_bytes(st.st_size)}; at most {human_bytes(limits.MAX_UNCOMPRESSED)} can be read."
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScanError(f"Cannot read '{path.name}': {exc.strerror or exc}.") from None
    return ScanFile(path.name, data)


def read_folder(root: Path) -> list[ScanFile]:
    """Every file below ``root`` (hidden files, junk and symbolic links skipped), within the limits."""
    files: list[ScanFile] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        for fname in sorted(filenames):
            if fname.startswith(".") or fname.lower() in JUNK_NAMES:
                continue
            path = Path(dirpath) / fname
            if path.is_symlink() or not path.is_file():
                continue
            if len(files) >= limits.MAX_FILES:
                raise ScanError(f"The folder '{root.name}' holds more than {limits.MAX_FILES} files; upload one case at a time.")
            size = path.stat().st_size
            total += size
            if total > limits.MAX_UNCOMPRESSED:
                raise ScanError(
                    f"The folder '{root.name}' holds more than {human_bytes(limits.MAX_UNCOMPRESSED)}; upload one case at a time."
                )
            rel = path.relative_to(root).as_posix()
            files.append(ScanFile(rel, read_path(path).data))
    return files


def strip_ext(name: str) -> str:
    """``"case_t1.nii.gz"`` -> ``"case_t1"``; a name without a short extension is kept."""
    lower = name.lower()
    for ext in (".nii.gz", ".dcm.gz"):
        if lower.endswith(ext):
            return name[: -len(ext)]
    stem, dot, ext = name.rpartition(".")
    return stem if dot and stem and len(ext) <= 5 else name


def natural_key(name: str) -> list[Any]:
    """Sort key that orders 'x_2' before 'x_10'."""
    return [(0, int(tok), "") if tok.isdigit() else (1, 0, tok) for tok in re.split(r"(\d+)", name.lower()) if tok]


def common_folder(files: Iterable[ScanFile]) -> str:
    """Name of the single top-level folder all files sit in, or ''."""
    tops = {PurePosixPath(f.name).parts[0] if len(PurePosixPath(f.name).parts) > 1 else "" for f in files}
    if len(tops) == 1:
        return tops.pop()
    return ""
