"""What a reader is: the group of files it is handed, and the two methods the registry calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

from .files import ScanFile
from .scan import Scan


@dataclass(frozen=True)
class FileGroup:
    """The files of one upload that one family of readers claims (e.g. every NIfTI file of a case).

    Attributes:
        files: the files, unpacked (never ZIP or gzip wrapped, except ``.nii.gz`` kept compressed).
        case_name: display name of the upload (file, folder or archive name).
        single: one file given on its own, not from a folder, list or archive: its errors are final.
        depth: 0 for the upload itself, 1 for files unpacked from a ZIP.
    """

    files: list[ScanFile]
    case_name: str
    single: bool = False
    depth: int = 0


class ScanReader(Protocol):
    """One input format, as MONAI's ``ImageReader``: the registry asks ``can_read`` and calls ``read``.

    Attributes:
        kinds: the file kinds (from :func:`seg_core.scans.detect.detect`) this reader's family reads;
            readers with the same ``kinds`` form a family and are asked in registry order.
        guessed_kinds: kinds taken only when no other family has files (DICOM without a signature).
        what: the files in words, plural, for the message about an upload that mixes families.
    """

    kinds: ClassVar[frozenset[str]]
    guessed_kinds: ClassVar[frozenset[str]]
    what: ClassVar[str]

    def can_read(self, group: FileGroup) -> bool:
        """True when this reader, rather than a later one of its family, reads ``group``."""
        ...

    def read(self, group: FileGroup) -> Scan:
        """The scan in the display layout; raises :class:`~seg_core.scans.limits.ScanError`."""
        ...
