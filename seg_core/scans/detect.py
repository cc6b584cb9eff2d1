"""What kind of file one upload file is: from its first bytes when they say, else from its name."""

from __future__ import annotations

import logging
import struct
from pathlib import PurePosixPath

from .files import ScanFile
from .limits import SUPPORTED_FORMATS, ScanError

logger = logging.getLogger(__name__)

IMAGE_KINDS = ("png", "jpeg", "tiff")

#: Signatures of formats people upload by mistake, so the message can say what the file is.
FOREIGN_MAGIC = (
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

_KIND_BY_EXTENSION = {
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
}

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


def nifti_magic(data: bytes) -> str | None:
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


def sniff(data: bytes) -> str | None:
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
    magic = nifti_magic(data)
    if magic in ("nifti1", "nifti2"):
        return "nifti"
    if magic in ("pair", "analyze"):
        return "analyze"
    return None


def kind_from_name(name: str) -> str | None:
    """Format from a file name's extension: 'nifti.gz' | 'nifti' | 'gzip' | an image kind | 'zip' | 'dicom' | None."""
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return "nifti.gz"
    if lower.endswith(".nii"):
        return "nifti"
    if lower.endswith(".gz"):
        return "gzip"
    return _KIND_BY_EXTENSION.get(PurePosixPath(lower).suffix)


def image_kind(f: ScanFile) -> str:
    """'png' | 'jpeg' | 'tiff' for a file already grouped as a 2D image."""
    return sniff(f.data) or kind_from_name(f.basename) or "png"


def detect(f: ScanFile) -> str:
    """Decide how to read one file: 'png' | 'jpeg' | 'tiff' | 'zip' | 'gzip' | 'dicom' | 'dicom?' | 'nifti'.

    The content decides when it is recognisable (a mis-named file still loads); the name is the
    fallback (e.g. DICOM without the 128-byte preamble). Raises ScanError with the reason otherwise.
    """
    data = f.data
    if not data:
        raise ScanError(f"'{f.basename}' is empty (0 bytes); the upload may have failed. Please try again.")
    sniffed = sniff(data)
    by_name = kind_from_name(f.basename)
    if sniffed == "analyze":
        raise ScanError(
            f"'{f.basename}' is the header of a two-file Analyze/NIfTI pair (.hdr/.img), which is not supported; "
            "convert it to a single .nii or .nii.gz file."
        )
    if sniffed is not None:
        if by_name and by_name.split(".")[0] != sniffed and not (by_name == "nifti.gz" and sniffed == "gzip"):
            logger.info("A file named like %s holds %s data; reading it as %s", by_name, sniffed, sniffed)
        return sniffed
    for magic, what in FOREIGN_MAGIC:
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


def dicom_meta_follows(head: bytes) -> bool:
    """A DICOM file (Part 10) carries its File Meta group (0002, little endian) right after "DICM";
    a signature followed by anything else (e.g. zeros) is no DICOM file pydicom could use."""
    return head[132:134] == b"\x02\x00"


def looks_like_raw_dicom(head: bytes) -> bool:
    """A DICOM data set without the 128-byte preamble starts with a group 0002 or 0008 tag (little endian)."""
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00")
