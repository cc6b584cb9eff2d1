"""A corpus of malformed and unusual inputs, generated on demand (small files only; nothing is committed).

Each entry is a file a user might upload, and what must happen to it: either a clear error (a
regular expression the message matches) or, for unusual-but-valid files (16-bit, CMYK), a scan.
The tests run every entry through the readers, the CLI and the REST API; the app engineer can
write the files to a folder and try them in the browser::

    python tests/malformed.py /tmp/malformed          # writes every file and prints what each must do

Sizes: every file is under 2 MB; the bombs only *claim* (ZIP) or *expand to* (gzip) huge sizes.
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from PIL import Image

#: PatientName written into the DICOM entries; it must never show up in a log, an error or an answer.
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "PID-0042-SECRET"


@dataclass(frozen=True)
class Malformed:
    """One corpus file.

    Attributes:
        filename: the upload's name (its extension is part of the test).
        build: makes the file's bytes.
        error: regular expression the ScanError message must match; None when the file must load.
        note: what is wrong with it.
    """

    filename: str
    build: Callable[[], bytes]
    error: str | None
    note: str

    @property
    def loads(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def _png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format=fmt)
    return buffer.getvalue()


def _brain(size: int = 64) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return ((((y - size / 2) ** 2 + (x - size / 2) ** 2) < (size / 3) ** 2) * 180 + (x % 7) * 5).astype(np.uint8)


def _nifti(data: np.ndarray, *, gz: bool = True) -> bytes:
    raw = nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])).to_bytes()
    return gzip.compress(raw, mtime=0) if gz else raw


def _nifti_header(dims: list[int], dtype: type = np.int16, payload: bytes = b"") -> bytes:
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    raw = bytearray(header.binaryblock)
    struct.pack_into("<8h", raw, 40, *(dims + [1] * (8 - len(dims))))  # dim[0..7], written raw: nibabel would refuse
    struct.pack_into("<f", raw, 108, 352.0)  # vox_offset
    return bytes(raw) + b"\x00" * 4 + payload


def mr_dicom(
    pixels: np.ndarray | None,
    *,
    rows: int | None = None,
    columns: int | None = None,
    sop_instance_uid: str | None = None,
    **attributes: Any,
) -> bytes:
    """A minimal MR image file (int16, explicit VR little endian), the tests' one DICOM builder.

    Args:
        pixels: ``(rows, columns)`` values, or None for a file without pixel data.
        rows, columns: dimensions to declare instead of the pixels' (a lie, for damaged files).
        sop_instance_uid: fixed UID (default: a new one).
        attributes: further data elements by keyword (e.g. ``PatientName``, ``ImagePositionPatient``).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = sop_instance_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.PixelData = pixels.astype("<i2").tobytes()
    else:
        ds.Rows, ds.Columns = rows or 64, columns or 64
    if rows is not None:
        ds.Rows, ds.Columns = rows, columns
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _dicom(pixels: np.ndarray | None, *, rows: int | None = None, columns: int | None = None) -> bytes:
    """An MR image carrying a patient's name, ID and birth date (which must never be echoed)."""
    return mr_dicom(
        pixels,
        rows=rows,
        columns=columns,
        sop_instance_uid="1.2.826.0.1.3680043.8.498.1",
        PatientName=PATIENT_NAME,
        PatientID=PATIENT_ID,
        PatientBirthDate="19700101",
        SeriesInstanceUID="1.2.826.0.1.3680043.8.498.2",
        InstanceNumber=1,
        ImagePositionPatient=[0.0, 0.0, 0.0],
        ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        PixelSpacing=[0.9, 0.9],
        SliceThickness=5.0,
    )


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo("placeholder")
            info.filename = name  # a crafted archive keeps names ZipInfo() would normalise
            info.compress_type = method
            archive.writestr(info, data)
    return buffer.getvalue()


def _zip_bomb() -> bytes:
    """16 MiB of zeros (16 KB compressed) whose headers claim 4 GiB: refused from the declared size."""
    data = bytearray(zip_bytes({"slices/brain.png": bytes(16 << 20)}))
    struct.pack_into("<I", data, 22, 0xFFFFFFF0)  # local header: uncompressed size
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 0xFFFFFFF0)  # central directory: uncompressed size
    return bytes(data)


def _zip_quine_like() -> bytes:
    """Many members each claiming a modest size that add up past every limit (2,000 x 1 MiB declared)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(2000):
            archive.writestr(f"s/{index}.png", b"\x00" * 1024)
    data = bytearray(buffer.getvalue())
    position = 0
    while (position := data.find(b"PK\x01\x02", position)) >= 0:
        struct.pack_into("<I", data, position + 24, 1 << 20)
        position += 4
    return bytes(data)


def _gzip_bomb() -> bytes:
    """A .dcm.gz that expands to 1.5 GiB of zeros: 96 gzip members of 16 MiB each (~1.5 MB on disk)."""
    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    return member * 96


def _nested_zips(depth: int = 6) -> bytes:
    data = _png(_brain())
    name = "slice.png"
    for level in range(depth):
        data = zip_bytes({name: data})
        name = f"level{level}.zip"
    return data


def _png_bomb() -> bytes:
    """A PNG whose header claims 100000 x 100000 pixels (10^10), with almost no data."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


def _tiff16_rgb() -> bytes:
    import tifffile

    buffer = io.BytesIO()
    rgb = np.stack([_brain().astype(np.uint16) * 250, _brain().astype(np.uint16) * 100, _brain().astype(np.uint16) * 10], -1)
    tifffile.imwrite(buffer, rgb, photometric="rgb")
    return buffer.getvalue()


def _gray16() -> bytes:
    return _png((_brain().astype(np.uint16) * 300 + 1000).astype(np.uint16))


def _truncated_gzip() -> bytes:
    noise = np.random.default_rng(0).normal(100, 20, (48, 48, 12)).astype(np.float32)
    whole = _nifti(noise)
    return whole[: len(whole) // 2]


def _nan_volume() -> bytes:
    volume = np.ones((32, 32, 4), np.float32)
    volume[3, 4, 1] = np.nan
    return _nifti(volume)


def _inf_volume() -> bytes:
    volume = np.ones((32, 32, 4), np.float32)
    volume[:, :, 2] = np.inf
    return _nifti(volume)


TEXT = b"Consultation notes. This is plain text, not an image.\n" * 40


CORPUS: list[Malformed] = [
    Malformed("empty.nii.gz", lambda: b"", "empty", "zero bytes"),
    Malformed("empty.png", lambda: b"", "empty", "zero bytes"),
    Malformed("truncated.nii.gz", lambda: _truncated_gzip(), "truncated", "gzip cut in the middle"),
    Malformed(
        "truncated_data.nii",
        lambda: _nifti(np.ones((32, 32, 8), np.float32), gz=False)[:2000],
        "truncated",
        "header, half the voxels",
    ),
    Malformed("huge_header.nii", lambda: _nifti_header([3, 10000, 10000, 10000]), "voxels", "header claims 10^12 voxels"),
    Malformed(
        "huge_header.nii.gz",
        lambda: gzip.compress(_nifti_header([3, 10000, 10000, 10000]), mtime=0),
        "voxels",
        "the same, gzipped",
    ),
    Malformed("negative_dim.nii", lambda: _nifti_header([3, 64, -64, 8]), "dimension|header|damaged", "a negative dimension"),
    Malformed("dim0_nine.nii", lambda: _nifti_header([9, 64, 64, 8]), "dimension|header|damaged", "dim[0] = 9 (at most 7 exist)"),
    Malformed("five_d.nii", lambda: _nifti_header([5, 16, 16, 4, 2, 3]), "dimensions", "5D"),
    Malformed(
        "fmri_100_volumes.nii.gz", lambda: _nifti(np.zeros((16, 16, 2, 100), np.int16)), "100 volumes", "4D with 100 volumes"
    ),
    Malformed("nan.nii.gz", _nan_volume, "not numbers", "one NaN voxel"),
    Malformed("inf.nii.gz", _inf_volume, "not numbers", "a slice of +Inf"),
    Malformed("text_renamed.nii.gz", lambda: TEXT, "named like a gzip-compressed NIfTI", "a text file renamed .nii.gz"),
    Malformed("gzipped_text.nii.gz", lambda: gzip.compress(TEXT, mtime=0), "not a NIfTI", "gzipped text named .nii.gz"),
    Malformed("one_pixel.png", lambda: _png(np.zeros((1, 1), np.uint8)), "1x1", "a 1-pixel image"),
    Malformed("png_bomb.png", _png_bomb, "enormous", "PNG header claiming 10^10 pixels"),
    Malformed("gray16.png", _gray16, None, "16-bit grayscale: loads with its raw values"),
    Malformed("rgb48.tiff", _tiff16_rgb, None, "16-bit-per-channel RGB TIFF: loads (three channels)"),
    Malformed("cmyk.jpg", lambda: _png(_brain(), "CMYK", "JPEG"), None, "CMYK JPEG: loads as gray"),
    Malformed("cmyk.tiff", lambda: _png(_brain(), "CMYK", "TIFF"), None, "CMYK TIFF: loads as gray"),
    Malformed("no_pixels.dcm", lambda: _dicom(None), "no pixel data", "DICOM (with a PatientName) and no pixel data"),
    Malformed(
        "huge_rows.dcm",
        lambda: _dicom(np.zeros((8, 8), np.int16), rows=65535, columns=65535),
        "4,294,836,225 voxels",
        "DICOM claiming 65535x65535 pixels with 128 bytes of data",
    ),
    Malformed("zip_bomb.zip", _zip_bomb, "would unpack to", "16 KB claiming 4 GiB"),
    Malformed("zip_many_claims.zip", _zip_quine_like, "would unpack to", "2,000 members claiming 2 GiB together"),
    Malformed("gzip_bomb.dcm.gz", _gzip_bomb, "refused|not a|damaged|supported", "1.5 MB expanding to 1.5 GiB of zeros"),
    Malformed(
        "zip_slip.zip", lambda: zip_bytes({"case/../../../etc/cron.d/evil.png": _png(_brain())}), "unsafe path", "a ../ path"
    ),
    Malformed("zip_absolute.zip", lambda: zip_bytes({"/tmp/evil.png": _png(_brain())}), "unsafe path", "an absolute path"),
    Malformed("nested.zip", _nested_zips, "None of the files|nested|archive", "ZIPs nested six deep"),
    Malformed("truncated.zip", lambda: zip_bytes({"a.png": _png(_brain())})[:-30], "not a readable ZIP|damaged", "ZIP cut short"),
]


def write_corpus(folder: str | Path) -> list[tuple[Malformed, Path]]:
    """Write every corpus file into ``folder``; returns (entry, path) pairs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for entry in CORPUS:
        path = folder / entry.filename
        path.write_bytes(entry.build())
        written.append((entry, path))
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python tests/malformed.py OUT_FOLDER")
    for entry, path in write_corpus(sys.argv[1]):
        outcome = "loads" if entry.loads else f"error matching /{entry.error}/"
        print(f"{path.name:<26} {path.stat().st_size:>9} B  {entry.note}: {outcome}")
