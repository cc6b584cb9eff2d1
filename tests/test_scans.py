"""Tests for seg_core.scans: every reader from a path and from bytes, orientation, round trips, bad inputs.

Real files come from nibabel's own test data (NIfTI and DICOM written by scanners and other tools)
and, when present, from the shared data folder (``BRAINSEG_DATA_ROOT`` or ``<repo>/../shared/data``,
through the ``data_root`` fixture of ``tests/conftest.py``; those tests are marked ``data``).
Everything else is generated in memory here.
"""

from __future__ import annotations

import gzip
import io
import struct
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from seg_core.scans import (
    LGG_RGB_MODALITIES,
    UNSPECIFIED,
    Scan,
    ScanError,
    describe,
    limits,
    load_scan,
    mask_to_source,
    save_mask,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from malformed import mr_dicom, zip_bytes  # noqa: E402

NIB_DATA = Path(nib.__file__).parent / "tests" / "data"
NICOM_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"

rng = np.random.default_rng(0)


# --------------------------------------------------------------------------------------------
# Builders and fixtures
# --------------------------------------------------------------------------------------------


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    im = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    im.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def nifti_bytes(data: np.ndarray, affine: np.ndarray | None = None, *, gz: bool = True, klass=nib.Nifti1Image) -> bytes:
    image = klass(data, np.eye(4) if affine is None else affine)
    raw = image.to_bytes()
    return gzip.compress(raw) if gz else raw


def dicom_bytes(
    pixels: np.ndarray,
    *,
    position: tuple[float, float, float] | None,
    instance: int,
    series: str = "1.2.3.4",
    orientation: tuple[float, ...] | None = (1, 0, 0, 0, 1, 0),
    spacing: tuple[float, float] = (0.8, 0.7),
    slope: float = 1.0,
    intercept: float = 0.0,
) -> bytes:
    """A minimal, valid MR image file (int16, explicit VR little endian)."""
    placement = {"ImagePositionPatient": position, "ImageOrientationPatient": orientation}
    return mr_dicom(
        pixels,
        SeriesInstanceUID=series,
        InstanceNumber=instance,
        PixelSpacing=list(spacing),
        SliceThickness=5.0,
        RescaleSlope=slope,
        RescaleIntercept=intercept,
        **{keyword: list(value) for keyword, value in placement.items() if value is not None},
    )


def dicom_series(n: int = 6, rows: int = 20, cols: int = 24, *, z_step: float = 2.5, series: str = "1.2.3.4", **kwargs):
    """Slices at z = 10 + k * z_step, k = 0..n-1, with slice k's pixels = k * 100 + pattern."""
    pattern = np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) % 97
    slices = []
    for k in range(n):
        pixels = (pattern + 100 * k).astype(np.int16)
        # Instance numbers deliberately disagree with the positions: sorting must use the positions.
        data = dicom_bytes(
            pixels, position=(-50.0, -60.0, 10.0 + k * z_step), instance=n - k if k % 2 else 3 * n + k, series=series, **kwargs
        )
        slices.append((f"IM{k:04d}.dcm", data, pixels))
    return slices


def shuffled(items: list) -> list:
    order = rng.permutation(len(items))
    return [items[i] for i in order]


# --------------------------------------------------------------------------------------------
# 2D images
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["bytes", "bytes_no_name", "path", "pair_list"])
def test_png_gray_every_source_kind(tmp_path, how):
    image = rng.integers(0, 256, size=(20, 24), dtype=np.uint8)
    data = png_bytes(image)
    if how == "bytes":
        scan = load_scan(data, name="slice.png")
    elif how == "bytes_no_name":
        scan = load_scan(data)
    elif how == "path":
        (tmp_path / "slice.png").write_bytes(data)
        scan = load_scan(tmp_path / "slice.png")
    else:
        scan = load_scan([("slice.png", data)])
    assert scan.array.shape == (1, 1, 20, 24)
    assert scan.array.dtype == np.float32
    np.testing.assert_array_equal(scan.array[0, 0], image)
    assert scan.modalities == (UNSPECIFIED,)
    assert scan.is_2d and scan.source_format == "png"
    assert scan.spacing == (1.0, 1.0, 1.0)


def test_png_16bit_keeps_raw_values():
    image = rng.integers(0, 4000, size=(32, 30)).astype(np.uint16)
    scan = load_scan(png_bytes(image), name="x.png")
    np.testing.assert_array_equal(scan.array[0, 0], image.astype(np.float32))
    assert scan.array.max() > 255


def test_rgb_with_equal_channels_is_one_gray_channel():
    gray = rng.integers(0, 256, size=(20, 20), dtype=np.uint8)
    scan = load_scan(png_bytes(np.stack([gray] * 3, axis=-1)), name="gray_as_rgb.png")
    assert scan.modalities == (UNSPECIFIED,)
    np.testing.assert_array_equal(scan.array[0, 0], gray)


@pytest.mark.parametrize("fmt,name", [("PNG", "x.png"), ("TIFF", "x.tif")])
def test_rgb_with_different_channels_keeps_file_order(fmt, name):
    rgb = rng.integers(0, 256, size=(18, 22, 3), dtype=np.uint8)
    scan = load_scan(png_bytes(rgb, fmt=fmt), name=name)
    assert scan.modalities == LGG_RGB_MODALITIES == ("t1", "flair", "t1c")
    for c in range(3):  # R, G, B -> channels 0, 1, 2 (no BGR swap)
        np.testing.assert_array_equal(scan.array[c, 0], rgb[..., c])
    assert scan.source_format == fmt.lower()


def test_rgba_drops_alpha():
    rgba = rng.integers(0, 256, size=(16, 16, 4), dtype=np.uint8)
    scan = load_scan(png_bytes(rgba), name="x.png")
    assert scan.array.shape == (3, 1, 16, 16)
    np.testing.assert_array_equal(scan.array[2, 0], rgba[..., 2])


@pytest.mark.parametrize("mode", ["P", "LA", "1", "I;16"])
def test_other_png_modes_load(mode):
    gray = (np.arange(400).reshape(20, 20) % 256).astype(np.uint8)
    scan = load_scan(png_bytes(gray, mode=mode), name="x.png")
    assert scan.array.shape[1:] == (1, 20, 20)
    assert scan.array.shape[0] in (1, 3)
    if mode in ("LA", "I;16"):
        np.testing.assert_array_equal(scan.array[0, 0], gray)
    if mode == "1":
        assert set(np.unique(scan.array)) <= {0.0, 255.0}


@pytest.mark.parametrize("fmt,name", [("JPEG", "x.jpg"), ("TIFF", "x.tiff")])
def test_cmyk_images_load(fmt, name):
    rgb = np.zeros((24, 24, 3), dtype=np.uint8)
    rgb[:, :12] = (200, 30, 30)
    scan = load_scan(png_bytes(rgb, mode="CMYK", fmt=fmt), name=name)
    assert scan.array.shape == (3, 1, 24, 24)
    assert scan.array[0, 0, 5, 5] > 150 and scan.array[1, 0, 5, 5] < 80  # red stays red


def test_jpeg_gray():
    gray = np.tile(np.linspace(0, 255, 32, dtype=np.uint8), (32, 1))
    scan = load_scan(png_bytes(gray, fmt="JPEG", quality=95), name="x.jpeg")
    assert scan.source_format == "jpeg" and scan.modalities == (UNSPECIFIED,)
    assert np.abs(scan.array[0, 0] - gray).max() < 12


def test_tiff_16bit_gray_and_rgb16_via_tifffile():
    import tifffile

    gray = rng.integers(0, 60000, size=(20, 24)).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, gray)
    scan = load_scan(buf.getvalue(), name="g.tif")
    np.testing.assert_array_equal(scan.array[0, 0], gray)

    rgb16 = rng.integers(0, 60000, size=(20, 24, 3)).astype(np.uint16)  # Pillow would cut this to 8 bits
    buf = io.BytesIO()
    tifffile.imwrite(buf, rgb16, photometric="rgb")
    scan = load_scan(buf.getvalue(), name="c.tif")
    assert scan.modalities == LGG_RGB_MODALITIES
    np.testing.assert_array_equal(scan.array[:, 0], rgb16.transpose(2, 0, 1))


def test_multipage_tiff_is_a_stack():
    import tifffile

    pages = rng.integers(0, 1000, size=(3, 20, 20)).astype(np.uint16)
    buf = io.BytesIO()
    tifffile.imwrite(buf, pages, photometric="minisblack")
    scan = load_scan(buf.getvalue(), name="stack.tif")
    assert scan.array.shape == (1, 3, 20, 20) and not scan.is_2d
    np.testing.assert_array_equal(scan.array[0], pages)


# --------------------------------------------------------------------------------------------
# NIfTI
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["path", "bytes", "bytes_no_name"])
def test_nifti_4d_example_from_nibabel(how):
    path = NIB_DATA / "example4d.nii.gz"
    source = nib.load(path)
    assert nib.aff2axcodes(source.affine) == ("L", "A", "S")
    if how == "path":
        scan = load_scan(path)
    elif how == "bytes":
        scan = load_scan(path.read_bytes(), name=path.name)
    else:
        scan = load_scan(path.read_bytes())
    data = np.asanyarray(source.dataobj).astype(np.float32)  # (X=128, Y=96, Z=24, 2)
    assert scan.array.shape == (2, 24, 96, 128)
    assert scan.modalities == ("channel0", "channel1")
    assert scan.source_format == "nifti"
    # L,A,S -> L,P,S flips Y; display[c, d, h, w] = data[w, Y-1-h, d, c].
    np.testing.assert_array_equal(scan.array, data[:, ::-1, :, :].transpose(3, 2, 1, 0))
    np.testing.assert_allclose(scan.spacing, (2.2, 2.0, 2.0), atol=1e-5)
    np.testing.assert_allclose(scan.affine, source.affine)


def test_nifti_big_endian_3d_from_bytes_without_name():
    path = NIB_DATA / "anatomical.nii"
    scan = load_scan(path.read_bytes())
    source = nib.load(path)
    assert scan.array.shape == (1, 25, 41, 33)
    np.testing.assert_array_equal(scan.array[0], np.asanyarray(source.dataobj)[:, ::-1, :].transpose(2, 1, 0))


def test_nifti2_loads():
    scan = load_scan(NIB_DATA / "example_nifti2.nii.gz")
    assert scan.array.shape == (2, 12, 20, 32)


def test_nifti_scaling_is_applied():
    raw = np.arange(16 * 16 * 2, dtype=np.int16).reshape(16, 16, 2)
    image = nib.Nifti1Image(raw, np.eye(4))
    image.header.set_slope_inter(2.0, 10.0)
    scan = load_scan(gzip.compress(image.to_bytes()), name="scaled.nii.gz")
    np.testing.assert_allclose(scan.array[0], (raw * 2.0 + 10.0)[::-1, ::-1, :].transpose(2, 1, 0))


def _world_of_display_voxels(scan: Scan, source_affine: np.ndarray) -> np.ndarray:
    """World (RAS) coordinates of every display voxel, through the stored source-voxel index."""
    idx = scan.array[0].astype(np.int64)  # the source volume holds its own flat index
    ijk = np.stack(np.unravel_index(idx, scan.meta["source_shape"]), axis=-1)  # (D, H, W, 3)
    return ijk @ source_affine[:3, :3].T + source_affine[:3, 3]


@pytest.mark.parametrize(
    "affine",
    [
        # voxel axes -> (P, S, R): a coronal-ish acquisition stored in a scrambled order
        np.array([[0, 0, 2.0, -20], [-3.0, 0, 0, 30], [0, 1.5, 0, -10], [0, 0, 0, 1]]),
        # oblique, near (R, I, P)
        np.array([[0.98, 0.1, 0, 0], [0, 0.1, -1.2, 0], [-0.1, -1.9, 0.05, 0], [0, 0, 0, 1]]),
        np.diag([-1.0, -1.0, 1.0, 1.0]),  # already the display orientation
    ],
)
def test_orientation_display_convention(affine):
    shape = (17, 19, 23)
    source = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    scan = load_scan(nifti_bytes(source, affine), name="oriented.nii.gz")
    world = _world_of_display_voxels(scan, affine)
    # slices run inferior -> superior, rows anterior -> posterior, columns right -> left
    assert (np.diff(world[..., 2], axis=0) > 0).all()
    assert (np.diff(world[..., 1], axis=1) < 0).all()
    assert (np.diff(world[..., 0], axis=2) < 0).all()
    assert sorted(scan.shape) == sorted(shape)
    assert scan.meta["source_shape"] == shape
    # and back: the display array mapped to the source grid is the source array itself
    np.testing.assert_array_equal(mask_to_source(scan, scan.array[0]), source)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_nifti_mask_round_trip_keeps_orientation_and_affine(tmp_path, suffix):
    path = NIB_DATA / "anatomical.nii"
    source = nib.load(path)
    scan = load_scan(path)
    # A mask drawn on the display array: voxels brighter than the mean.
    mask = (scan.array[0] > scan.array[0].mean()).astype(np.uint8)
    out = tmp_path / f"mask{suffix}"
    data = save_mask(scan, mask, out)
    assert out.read_bytes() == data
    written = nib.load(out)
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_allclose(written.affine, source.affine)
    assert written.shape == source.shape
    on_disk = np.asanyarray(written.dataobj)
    np.testing.assert_array_equal(on_disk, mask_to_source(scan, mask))
    # the same mask computed directly in the file's own voxel order
    src = np.asanyarray(source.dataobj).astype(np.float32)
    np.testing.assert_array_equal(on_disk, (src > src.mean()).astype(np.uint8))
    # reloading the written mask gives back the display mask
    np.testing.assert_array_equal(load_scan(out).array[0], mask)


def test_mask_round_trip_4d_source_and_non_ras(tmp_path):
    affine = np.array([[0, 0, 2.0, -20], [-3.0, 0, 0, 30], [0, 1.5, 0, -10], [0, 0, 0, 1]])
    data = rng.normal(size=(18, 20, 22, 2)).astype(np.float32)
    scan = load_scan(nifti_bytes(data, affine), name="two.nii.gz")
    mask = (scan.array[1] > 0.5).astype(np.uint8)
    save_mask(scan, mask, tmp_path / "m.nii.gz")
    written = nib.load(tmp_path / "m.nii.gz")
    assert written.shape == (18, 20, 22)
    np.testing.assert_allclose(written.affine, affine)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), (data[..., 1] > 0.5).astype(np.uint8))


def test_single_slice_nifti_is_a_volume_of_one_slice():
    data = rng.normal(size=(30, 28, 1)).astype(np.float32)
    scan = load_scan(nifti_bytes(data, np.diag([-1.0, -1.0, 1.0, 1.0])), name="one.nii.gz")
    assert scan.array.shape == (1, 1, 28, 30)
    assert not scan.is_2d
    np.testing.assert_array_equal(scan.array[0, 0], data[..., 0].T)


def test_4d_single_volume_and_modalities_override():
    data = rng.normal(size=(16, 16, 4, 3)).astype(np.float32)
    scan = load_scan(nifti_bytes(data), name="msd.nii.gz", modalities=["FLAIR", "t1gd", "T2w"])
    assert scan.modalities == ("flair", "t1c", "t2")
    one = load_scan(nifti_bytes(data[..., :1]), name="one.nii.gz")
    assert one.array.shape == (1, 4, 16, 16) and one.modalities == (UNSPECIFIED,)


def test_gzip_nifti_with_huge_trailing_garbage_reads_only_what_the_header_needs():
    raw = nib.Nifti1Image(np.ones((16, 16, 2), np.uint8), np.eye(4)).to_bytes()
    bomb = gzip.compress(raw + b"\x00" * (64 * 1024 * 1024), compresslevel=1)
    scan = load_scan(bomb, name="padded.nii.gz")
    assert scan.array.shape == (1, 2, 16, 16)


# --------------------------------------------------------------------------------------------
# DICOM
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["paths", "pairs", "folder"])
def test_dicom_pair_from_nibabel_sorted_by_position(tmp_path, how):
    import pydicom

    files = [NICOM_DATA / "1.dcm", NICOM_DATA / "0.dcm"]  # given in the wrong order
    if how == "paths":
        scan = load_scan(files)
    elif how == "pairs":
        scan = load_scan([(f.name, f.read_bytes()) for f in files])
    else:
        for f in files:
            (tmp_path / f.name).write_bytes(f.read_bytes())
        scan = load_scan(tmp_path)
    lower, upper = (pydicom.dcmread(NICOM_DATA / n).pixel_array for n in ("0.dcm", "1.dcm"))  # z = -75.1, -72.1
    assert scan.source_format == "dicom"
    assert scan.array.shape == (1, 2, 256, 256)
    np.testing.assert_array_equal(scan.array[0, 0], lower)
    np.testing.assert_array_equal(scan.array[0, 1], upper)
    np.testing.assert_allclose(scan.spacing, (3.0, 1.796875, 1.796875), atol=1e-3)


def test_dicom_single_file_from_bytes():
    data = (NICOM_DATA / "0.dcm").read_bytes()
    scan = load_scan(data)  # sniffed from the DICM preamble
    assert scan.array.shape == (1, 1, 256, 256) and scan.source_format == "dicom"


@pytest.mark.parametrize("how", ["pairs", "folder", "zip"])
def test_synthetic_dicom_series_sorted_rescaled_and_placed(tmp_path, how):
    series = dicom_series(6, slope=2.0, intercept=-100.0)
    mixed = shuffled(series)
    if how == "pairs":
        scan = load_scan([(name, data) for name, data, _ in mixed])
    elif how == "folder":
        sub = tmp_path / "series" / "nested"
        sub.mkdir(parents=True)
        for name, data, _ in mixed:
            (sub / name).write_bytes(data)
        (tmp_path / "series" / "README.txt").write_text("not an image")
        scan = load_scan(tmp_path / "series")
    else:
        scan = load_scan(zip_bytes({f"case/{name}": data for name, data, _ in mixed}), name="case.zip")
    assert scan.array.shape == (1, 6, 20, 24)
    for k, (_, _, pixels) in enumerate(series):
        np.testing.assert_array_equal(scan.array[0, k], pixels * 2.0 - 100.0)
    np.testing.assert_allclose(scan.spacing, (2.5, 0.8, 0.7))
    # LPS (-50, -60, 10) -> RAS (50, 60, 10); columns step 0.7 mm towards L = -x in RAS
    expected = np.array([[-0.7, 0, 0, 50.0], [0, -0.8, 0, 60.0], [0, 0, 2.5, 10.0], [0, 0, 0, 1]])
    np.testing.assert_allclose(scan.affine, expected, atol=1e-6)


def test_dicom_flipped_row_direction_is_shown_radiologically():
    # Columns running towards the patient's right (row direction -x in LPS) must be mirrored for display.
    series = dicom_series(3, orientation=(-1, 0, 0, 0, 1, 0))
    scan = load_scan([(n, d) for n, d, _ in series])
    np.testing.assert_array_equal(scan.array[0, 0], series[0][2][:, ::-1])


def test_dicom_without_positions_falls_back_to_instance_number():
    pattern = np.arange(20 * 20, dtype=np.int16).reshape(20, 20)
    files = [(f"f{k}", dicom_bytes(pattern + k, position=None, orientation=None, instance=k + 1)) for k in (3, 0, 2, 1)]
    scan = load_scan(files)
    assert [int(scan.array[0, k, 0, 0]) for k in range(4)] == [0, 1, 2, 3]
    assert any("instance number" in n for n in scan.meta["notes"])


def test_dicom_multiple_series_takes_the_largest():
    big = dicom_series(5, series="1.2.3.100")
    small = dicom_series(2, rows=30, cols=30, series="1.2.3.200")
    scan = load_scan([(f"a/{n}", d) for n, d, _ in big] + [(f"b/{n}", d) for n, d, _ in small])
    assert scan.array.shape == (1, 5, 20, 24)
    assert scan.meta["dicom_series_count"] == 2
    assert scan.meta["dicom_ignored_frames"] == 2
    assert any("largest" in n for n in scan.meta["notes"])


def test_enhanced_multiframe_dicom_gz_with_per_frame_rescale():
    import pydicom

    data = (NICOM_DATA / "philips_mprage.dcm.gz").read_bytes()
    scan = load_scan(data, name="philips_mprage.dcm.gz")
    ds = pydicom.dcmread(io.BytesIO(gzip.decompress(data)))
    slope = float(ds.PerFrameFunctionalGroupsSequence[0].PixelValueTransformationSequence[0].RescaleSlope)
    assert scan.array.shape == (1, 256, 256, 176)  # sagittal frames shown as axial slices
    np.testing.assert_allclose(scan.spacing, (1.0, 1.0, 1.0), atol=1e-4)
    np.testing.assert_allclose(scan.array.sum(dtype=np.float64), ds.pixel_array.sum(dtype=np.float64) * slope, rtol=1e-5)


def test_dicom_mask_saved_as_nifti_with_the_computed_affine(tmp_path):
    scan = load_scan([(n, d) for n, d, _ in dicom_series(4)])
    mask = np.zeros(scan.shape, np.uint8)
    mask[1, 2:5, 3:9] = 1
    save_mask(scan, mask, tmp_path / "m.nii.gz")
    written = nib.load(tmp_path / "m.nii.gz")
    np.testing.assert_allclose(written.affine, scan.affine)
    assert written.shape == (24, 20, 4)  # (columns, rows, slices): the affine's voxel order
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), mask.transpose(2, 1, 0))


def test_single_sagittal_dicom_slice_stays_one_slice():
    path = NICOM_DATA / "slicethickness_empty_string.dcm"  # JPEG 2000, oblique sagittal
    try:
        scan = load_scan(path)
    except ScanError as exc:
        assert "cannot decode" in str(exc)
        pytest.skip("no JPEG 2000 decoder here")
    assert scan.array.shape == (1, 1, 384, 384) and scan.meta["plane"] == "sagittal"
    mask = (scan.array[0] > scan.array.mean()).astype(np.uint8)
    assert mask_to_source(scan, mask).shape == (384, 384, 1)


def test_compressed_dicom_without_decoder_is_a_clear_error():
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless, MRImageStorage, generate_uid

    if get_decoder(JPEGLSLossless).is_available:
        pytest.skip("a JPEG-LS decoder is installed")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGLSLossless
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.Rows, ds.Columns = 32, 32
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7" + b"\x00" * 64])
    ds["PixelData"].VR = "OB"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with pytest.raises(ScanError, match="JPEG-LS.*cannot decode"):
        load_scan(buf.getvalue(), name="ls.dcm")


# --------------------------------------------------------------------------------------------
# ZIP archives and stacks of slices
# --------------------------------------------------------------------------------------------


def lgg_like_case(n: int = 11, size: int = 20) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """Members of a ZIP like one kaggle_3m case, plus the expected (3, D, H, W) array and (D, H, W) label."""
    members: dict[str, bytes] = {}
    volume, label = [], []
    for k in range(1, n + 1):
        rgb = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        rgb[0, 0] = (k, 2 * k, 3 * k)  # the slice number, readable from the pixels
        mask = np.zeros((size, size), np.uint8)
        mask[k % size, 2:6] = 255
        members[f"CASE_A/CASE_A_{k}.tif"] = png_bytes(rgb, fmt="TIFF", compression="tiff_adobe_deflate")
        members[f"CASE_A/CASE_A_{k}_mask.tif"] = png_bytes(mask, fmt="TIFF")
        volume.append(rgb)
        label.append(mask > 0)
    return members, np.stack(volume).transpose(3, 0, 1, 2), np.stack(label).astype(np.uint8)


def test_zip_of_slices_natural_order_rgb_and_label():
    members, expected, label = lgg_like_case(11)
    members["__MACOSX/CASE_A/._CASE_A_1.tif"] = b"junk"
    members["CASE_A/notes.txt"] = b"hello"
    items = list(members.items())
    scan = load_scan(zip_bytes(dict(shuffled(items))), name="case.zip")
    assert scan.source_format == "zip" and scan.name == "CASE_A"
    assert scan.modalities == ("t1", "flair", "t1c")
    assert [int(scan.array[0, k, 0, 0]) for k in range(11)] == list(range(1, 12))  # 1, 2, ..., 10, 11
    np.testing.assert_array_equal(scan.array, expected)
    np.testing.assert_array_equal(scan.label, label)
    assert scan.label.dtype == np.uint8 and set(np.unique(scan.label)) == {0, 1}


def test_lgg_case_with_one_sequence_repeated_keeps_three_channels_and_other_gray_rgb_stays_gray():
    # TCGA_DU_7013 in the LGG release: its three channels are one image (a missing sequence filled in).
    rng = np.random.default_rng(3)
    slices = [rng.integers(0, 255, (16, 16), dtype=np.uint8) for _ in range(3)]
    rgb = [np.repeat(s[..., None], 3, axis=2) for s in slices]
    lgg = {f"TCGA_DU_7013_19860523/TCGA_DU_7013_19860523_{k + 1}.png": png_bytes(a) for k, a in enumerate(rgb)}
    scan = load_scan(zip_bytes(lgg), name="case.zip")
    assert scan.modalities == ("t1", "flair", "t1c") and scan.array.shape == (3, 3, 16, 16)
    assert any("one image repeated" in note for note in scan.meta["notes"])
    one = load_scan(png_bytes(rgb[0]), name="TCGA_DU_7013_19860523_1.png")
    assert one.modalities == ("t1", "flair", "t1c") and one.array.shape == (3, 1, 16, 16)
    # The same pixels under other names are a gray picture saved as RGB: one channel.
    other = {f"case/slice_{k + 1}.png": png_bytes(a) for k, a in enumerate(rgb)}
    assert load_scan(zip_bytes(other), name="case.zip").modalities == (UNSPECIFIED,)
    assert load_scan(png_bytes(rgb[0]), name="photo.png").array.shape == (1, 1, 16, 16)


def test_slice_folder_from_path(tmp_path):
    members, expected, label = lgg_like_case(4)
    for name, data in members.items():
        (tmp_path / Path(name).name).write_bytes(data)
    scan = load_scan(tmp_path)
    np.testing.assert_array_equal(scan.array, expected)
    np.testing.assert_array_equal(scan.label, label)
    assert scan.source_format == "tiff"


def test_zip_from_path(tmp_path):
    members, expected, label = lgg_like_case(3)
    (tmp_path / "CASE_A.zip").write_bytes(zip_bytes(members))
    scan = load_scan(tmp_path / "CASE_A.zip")
    assert scan.source_format == "zip" and scan.meta["archive"] == "CASE_A.zip"
    np.testing.assert_array_equal(scan.array, expected)
    np.testing.assert_array_equal(scan.label, label)


def test_single_image_with_mask_is_2d_with_label():
    image = rng.integers(0, 256, (20, 20), dtype=np.uint8)
    mask = np.zeros((20, 20), np.uint8)
    mask[5:9, 5:9] = 255
    scan = load_scan([("12.png", png_bytes(image)), ("12_mask.png", png_bytes(mask))])
    assert scan.is_2d and scan.label.sum() == 16


def test_slice_of_another_size_is_named():
    members, _, _ = lgg_like_case(3)
    members["CASE_A/CASE_A_2.tif"] = png_bytes(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8), fmt="TIFF")
    with pytest.raises(ScanError, match="CASE_A_2.tif"):
        load_scan(zip_bytes(members), name="case.zip")


def test_zip_holding_a_nifti_and_a_zip_of_two_cases():
    data = rng.normal(size=(16, 16, 3)).astype(np.float32)
    scan = load_scan(zip_bytes({"scan/t.nii.gz": nifti_bytes(data)}))
    assert scan.source_format == "nifti" and scan.array.shape == (1, 3, 16, 16)
    img = png_bytes(rng.integers(0, 256, (16, 16), dtype=np.uint8))
    with pytest.raises(ScanError, match="several folders"):
        load_scan(zip_bytes({"a/1.png": img, "a/2.png": img, "b/1.png": img}), name="two.zip")


# --------------------------------------------------------------------------------------------
# BraTS
# --------------------------------------------------------------------------------------------

BRATS_SHAPE = (20, 22, 18)
BRATS_AFFINE = np.array([[-1.0, 0, 0, 90], [0, 1.0, 0, -120], [0, 0, 1.0, -70], [0, 0, 0, 1]])  # LAS


def brats_case(style: str = "2020") -> tuple[dict[str, bytes], dict[str, np.ndarray], np.ndarray]:
    """Files of a small synthetic BraTS case; returns (files, source volumes by modality, source labels)."""
    base = rng.normal(size=BRATS_SHAPE).astype(np.float32)
    volumes = {m: base + 10 * i for i, m in enumerate(("t1", "t1c", "t2", "flair"))}
    labels = np.zeros(BRATS_SHAPE, np.uint8)
    labels[5:9, 6:10, 4:8] = 2
    labels[6:8, 7:9, 5:7] = 4
    labels[7, 8, 6] = 1
    if style == "2020":
        names = {"t1": "_t1", "t1c": "_t1ce", "t2": "_t2", "flair": "_flair", "seg": "_seg"}
        fname = {k: f"BraTS20_Training_007{v}.nii.gz" for k, v in names.items()}
    else:
        names = {"t1": "-t1n", "t1c": "-t1c", "t2": "-t2w", "flair": "-t2f", "seg": "-seg"}
        fname = {k: f"BraTS-GLI-00007-000{v}.nii.gz" for k, v in names.items()}
    files = {fname[m]: nifti_bytes(v, BRATS_AFFINE) for m, v in volumes.items()}
    files[fname["seg"]] = nifti_bytes(labels, BRATS_AFFINE)
    return dict(shuffled(list(files.items()))), volumes, labels


def las_to_display(volume: np.ndarray) -> np.ndarray:
    return volume[:, ::-1, :].transpose(2, 1, 0)


@pytest.mark.parametrize("how", ["folder", "paths", "pairs", "zip"])
def test_brats_2020_case_every_source_kind(tmp_path, how):
    files, volumes, labels = brats_case("2020")
    if how in ("folder", "paths"):
        case = tmp_path / "BraTS20_Training_007"
        case.mkdir()
        for name, data in files.items():
            (case / name).write_bytes(data)
        scan = load_scan(case if how == "folder" else sorted(case.iterdir()))
    elif how == "pairs":
        scan = load_scan(list(files.items()))
    else:
        scan = load_scan(zip_bytes({f"BraTS20_Training_007/{n}": d for n, d in files.items()}), name="case.zip")
    assert scan.source_format == "brats"
    assert scan.modalities == ("t1", "t1c", "t2", "flair")
    for i, m in enumerate(scan.modalities):
        np.testing.assert_array_equal(scan.array[i], las_to_display(volumes[m]))
    np.testing.assert_array_equal(scan.meta["label_classes"], las_to_display(labels))
    np.testing.assert_array_equal(scan.label, las_to_display((labels > 0).astype(np.uint8)))
    assert scan.label.dtype == np.uint8
    if how != "pairs":
        assert scan.name == "BraTS20_Training_007"


def test_brats_2023_names_and_mask_round_trip(tmp_path):
    files, volumes, labels = brats_case("2023")
    scan = load_scan(list(files.items()))
    assert scan.modalities == ("t1", "t1c", "t2", "flair")
    np.testing.assert_array_equal(scan.array[3], las_to_display(volumes["flair"]))
    save_mask(scan, scan.label, tmp_path / "wt.nii.gz")
    written = nib.load(tmp_path / "wt.nii.gz")
    np.testing.assert_allclose(written.affine, BRATS_AFFINE)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), (labels > 0).astype(np.uint8))


def test_brats_subset_of_modalities_in_canonical_order():
    files, volumes, _ = brats_case("2020")
    keep = {n: d for n, d in files.items() if n.endswith(("_flair.nii.gz", "_t1.nii.gz"))}
    scan = load_scan(list(keep.items()))
    assert scan.modalities == ("t1", "flair") and scan.label is None
    np.testing.assert_array_equal(scan.array[1], las_to_display(volumes["flair"]))


def test_brats_mismatched_grid_and_duplicate_modality():
    files, _, _ = brats_case("2020")
    bad = dict(files)
    bad["BraTS20_Training_007_t2.nii.gz"] = nifti_bytes(np.zeros((20, 22, 17), np.float32), BRATS_AFFINE)
    with pytest.raises(ScanError, match="BraTS20_Training_007_t2.*same grid|same grid"):
        load_scan(list(bad.items()))
    dup = dict(files)
    dup["Other_case_flair.nii.gz"] = files["BraTS20_Training_007_flair.nii.gz"]
    with pytest.raises(ScanError, match="FLAIR"):
        load_scan(list(dup.items()))


# --------------------------------------------------------------------------------------------
# Shared data (real public cases)
# --------------------------------------------------------------------------------------------


@pytest.mark.data
def test_figshare_png_path_and_bytes(data_root):
    path = sorted((data_root / "figshare" / "images").glob("*.png"))[0]
    expected = np.asarray(Image.open(path))
    for scan in (load_scan(path), load_scan(path.read_bytes(), name=path.name)):
        assert scan.is_2d and scan.modalities == (UNSPECIFIED,)
        np.testing.assert_array_equal(scan.array[0, 0], expected)


@pytest.mark.data
def test_lgg_case_zipped_in_memory(data_root):
    case = sorted(p for p in (data_root / "lgg" / "kaggle_3m").iterdir() if p.is_dir())[0]
    members = {f"{case.name}/{p.name}": p.read_bytes() for p in case.iterdir()}
    scan = load_scan(zip_bytes(members), name=f"{case.name}.zip")
    numbers = sorted(int(p.stem.rsplit("_", 1)[1]) for p in case.glob("*.tif") if not p.stem.endswith("_mask"))
    assert scan.array.shape[:2] == (3, len(numbers))
    assert scan.modalities == ("t1", "flair", "t1c")
    for k in (0, len(numbers) // 2, len(numbers) - 1):
        rgb = np.asarray(Image.open(case / f"{case.name}_{numbers[k]}.tif"))
        np.testing.assert_array_equal(scan.array[:, k], rgb.transpose(2, 0, 1))
        mask = np.asarray(Image.open(case / f"{case.name}_{numbers[k]}_mask.tif"))
        np.testing.assert_array_equal(scan.label[k], (mask > 0).astype(np.uint8))


@pytest.mark.data
def test_brats2015_case_folder(data_root):
    case = data_root / "brats2015" / "brats_2013_pat0001_1"
    scan = load_scan(case)
    assert scan.source_format == "brats" and scan.meta["brats_layout"] == "2015"
    assert scan.modalities == ("t1c", "flair")
    assert scan.array.shape == (2, 155, 240, 240)
    ot = nib.load(case / "OTMultiClass.nii.gz")
    assert nib.aff2axcodes(ot.affine) == ("L", "P", "S")  # already the display orientation
    classes = np.asanyarray(ot.dataobj)
    np.testing.assert_array_equal(scan.label, (classes > 0).transpose(2, 1, 0).astype(np.uint8))
    assert set(np.unique(scan.meta["label_classes"])) == {0, 1, 2, 3, 4}
    flair = np.asanyarray(nib.load(case / "Flair_subtrMeanDivStd.nii.gz").dataobj)
    np.testing.assert_array_equal(scan.array[1], flair.transpose(2, 1, 0))
    brain = scan.meta["brainmask"]
    source_brain = np.asanyarray(nib.load(case / "brainmask.nii.gz").dataobj)
    assert brain.dtype == np.uint8
    np.testing.assert_array_equal(brain, (source_brain > 0.5).transpose(2, 1, 0))
    assert 0.05 < brain.mean() < 0.5


# --------------------------------------------------------------------------------------------
# Bad inputs: each one a ScanError, quickly
# --------------------------------------------------------------------------------------------


def nifti_header_bytes(shape: tuple[int, ...], dtype=np.int16, payload: bytes = b"") -> bytes:
    header = nib.Nifti1Header()
    header.set_data_dtype(dtype)
    header["dim"][0] = len(shape)
    header["dim"][1 : len(shape) + 1] = shape
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4 + payload


TEXT = b"Patient notes: this is plain text, not an image.\n" * 20
ANATOMICAL = (NIB_DATA / "anatomical.nii").read_bytes()
EXAMPLE4D_GZ = (NIB_DATA / "example4d.nii.gz").read_bytes()
GOOD_PNG = png_bytes(rng.integers(0, 256, (64, 64), dtype=np.uint8))


def corrupt_middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[:mid] + bytes(b ^ 0xFF for b in data[mid : mid + 64]) + data[mid + 64 :]


BAD_INPUTS = {
    "zero bytes": (b"", "x.nii.gz", "empty"),
    "zero bytes, no name": (b"", None, "empty"),
    "truncated nii": (ANATOMICAL[:20000], "a.nii", "truncated"),
    "truncated nii.gz": (EXAMPLE4D_GZ[: len(EXAMPLE4D_GZ) // 2], "e.nii.gz", "truncated"),
    "corrupt gzip": (corrupt_middle(EXAMPLE4D_GZ), "e.nii.gz", "damaged"),
    "damaged nifti header": (ANATOMICAL[:40] + b"\xff" * 30 + ANATOMICAL[70:], "a.nii", "header|damaged"),
    "header claims a huge array": (nifti_header_bytes((4096, 4096, 4096)), "huge.nii", "voxels"),
    "header claims huge, gzipped": (gzip.compress(nifti_header_bytes((30000, 30000, 200), np.float64)), "huge.nii.gz", "voxels"),
    "zero-sized dimension": (nifti_header_bytes((64, 0, 10)), "empty.nii", "empty dimension"),
    "5D": (nifti_header_bytes((16, 16, 4, 2, 3)), "five.nii", "dimensions"),
    "100 volumes": (nifti_bytes(np.zeros((16, 16, 2, 100), np.int16)), "fmri.nii.gz", "100 volumes"),
    "complex voxels": (nifti_bytes(np.zeros((16, 16, 2), np.complex64)), "c.nii.gz", "complex"),
    "NaN voxels": (nifti_bytes(np.where(np.eye(16)[..., None] > 0, np.nan, 1.0).astype(np.float32)), "n.nii.gz", "16 voxel"),
    "Inf voxels": (nifti_bytes(np.full((16, 16, 2), np.inf, np.float32)), "i.nii.gz", "512 voxel"),
    "text renamed .nii.gz": (TEXT, "scan.nii.gz", "named like a gzip-compressed NIfTI"),
    "gzipped text named .nii.gz": (gzip.compress(TEXT), "scan.nii.gz", "not a NIfTI"),
    "text renamed .png": (TEXT, "scan.png", "named like a PNG"),
    "text renamed .dcm": (TEXT, "scan.dcm", "DICOM"),
    "plain text": (TEXT, "notes.txt", "not a supported file type"),
    "random bytes, no name": (bytes(rng.integers(0, 256, 5000, dtype=np.uint8)), None, "Supported"),
    "pdf": (b"%PDF-1.7\n" + TEXT, "report.pdf", "PDF"),
    "analyze header": (nib.AnalyzeImage(np.zeros((16, 16, 2), np.int16), np.eye(4)).header.binaryblock, "a.hdr", "Analyze"),
    "truncated png": (GOOD_PNG[: len(GOOD_PNG) // 2], "t.png", "damaged|truncated"),
    "corrupt png": (corrupt_middle(GOOD_PNG), "c.png", "damaged|truncated|readable"),
    "1 pixel png": (png_bytes(np.zeros((1, 1), np.uint8)), "dot.png", "1x1"),
    "8x8 png": (png_bytes(np.zeros((8, 8), np.uint8)), "tiny.png", "8x8"),
    "thin volume": (nifti_bytes(np.zeros((200, 4, 30), np.float32)), "thin.nii.gz", "at least 16x16"),
    "truncated dicom": ((NICOM_DATA / "0.dcm").read_bytes()[:60000], "t.dcm", "truncated|damaged"),
    "dicom without pixel data": ((NICOM_DATA / "csa_slice_norm.dcm").read_bytes(), "n.dcm", "no pixel data"),
    "dicom cut inside the pixel data": ((NICOM_DATA / "0.dcm").read_bytes()[:-1000], "t.dcm", "truncated"),
    "tar archive": (b"a" * 257 + b"ustar" + b"\x00" * 300, "case.tar", "TAR"),
}


@pytest.mark.parametrize("key", list(BAD_INPUTS))
def test_bad_input_raises_scan_error(key):
    data, name, message = BAD_INPUTS[key]
    with pytest.raises(ScanError, match=f"(?i){message}"):
        load_scan(data, name=name)


def test_bad_input_is_a_scan_error_from_a_path_too(tmp_path):
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(ScanError, match="empty"):
        load_scan(tmp_path / "empty.nii.gz")
    with pytest.raises(ScanError, match="not found"):
        load_scan(tmp_path / "missing.nii.gz")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ScanError, match="No files"):
        load_scan(tmp_path / "nothing")
    with pytest.raises(ScanError, match="Cannot read a int"):
        load_scan(42)


@pytest.mark.parametrize("member", ["../evil.png", "a/../../evil.png", "/etc/evil.png", "C:/evil.png", "..\\evil.png"])
def test_zip_with_path_traversal_is_refused(member):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(zipfile.ZipInfo("ok.png"), GOOD_PNG)
        info = zipfile.ZipInfo("placeholder")
        info.filename = member  # ZipInfo() would normalise the name; a crafted archive does not
        zf.writestr(info, GOOD_PNG)
    with pytest.raises(ScanError, match="unsafe path"):
        load_scan(buf.getvalue(), name="evil.zip")


def test_zip_bomb_declared_size_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_UNCOMPRESSED", 1024 * 1024)
    bomb = zip_bytes({"a.png": b"\x00" * (2 * 1024 * 1024)})
    assert len(bomb) < 20_000
    with pytest.raises(ScanError, match="unpack"):
        load_scan(bomb, name="bomb.zip")


def test_zip_member_larger_than_declared_is_refused():
    data = bytearray(zip_bytes({"a.png": b"\x00" * 100_000}))
    struct.pack_into("<I", data, 22, 100)  # local header: uncompressed size
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 100)  # central directory: uncompressed size
    with pytest.raises(ScanError, match="larger than the archive says|damaged"):
        load_scan(bytes(data), name="liar.zip")


def test_zip_with_too_many_members_encrypted_or_empty(monkeypatch):
    encrypted = bytearray(zip_bytes({"a.png": GOOD_PNG}))
    central = encrypted.find(b"PK\x01\x02")
    encrypted[central + 8] |= 0x1
    encrypted[6] |= 0x1
    with pytest.raises(ScanError, match="password"):
        load_scan(bytes(encrypted), name="secret.zip")
    with pytest.raises(ScanError, match="empty ZIP"):
        load_scan(zip_bytes({}), name="empty.zip")
    with pytest.raises(ScanError, match="None of the files"):
        load_scan(zip_bytes({"readme.txt": TEXT}), name="text.zip")
    monkeypatch.setattr(limits, "MAX_FILES", 5)
    with pytest.raises(ScanError, match="at most 5"):
        load_scan(zip_bytes({f"{i}.png": GOOD_PNG for i in range(6)}), name="many.zip")


def test_gzip_bomb_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "MAX_UNCOMPRESSED", 1024 * 1024)
    # Content that looks like DICOM is decompressed up to the limit, then refused.
    bomb = gzip.compress(b"\x00" * 128 + b"DICM\x02\x00" + b"\x00" * (8 * 1024 * 1024), compresslevel=1)
    with pytest.raises(ScanError, match="more than"):
        load_scan(bomb, name="scan.dcm.gz")
    # Content that looks like nothing is refused from its first 4 KiB, without decompressing the rest.
    zeros = gzip.compress(b"\x00" * (8 * 1024 * 1024), compresslevel=1)
    with pytest.raises(ScanError, match="not a DICOM file"):
        load_scan(zeros, name="scan.dcm.gz")
    # A DICOM signature followed by zeros, not by the DICOM header: refused from the first 4 KiB too.
    signature_only = gzip.compress(b"\x00" * 128 + b"DICM" + b"\x00" * (8 * 1024 * 1024), compresslevel=1)
    with pytest.raises(ScanError, match="not a DICOM file"):
        load_scan(signature_only, name="scan.dcm.gz")
    with pytest.raises(ScanError, match="TAR archive"):
        load_scan(gzip.compress(b"a" * 257 + b"ustar" + b"\x00" * 300), name="case.tar.gz")


def test_upload_objects_and_a_zip_inside_a_file_list():
    class Upload(io.BytesIO):  # what Streamlit's file_uploader hands over
        def __init__(self, name: str, data: bytes) -> None:
            super().__init__(data)
            self.name = name

    scan = load_scan(Upload("slice.png", GOOD_PNG))
    assert scan.name == "slice" and scan.array.shape == (1, 1, 64, 64)
    series = dicom_series(3)
    upload = [Upload("part1.zip", zip_bytes({n: d for n, d, _ in series[:2]})), Upload(series[2][0], series[2][1])]
    scan = load_scan(upload, name="case")
    assert scan.name == "case" and scan.array.shape == (1, 3, 20, 24)
    np.testing.assert_array_equal(scan.array[0, 2], series[2][2])


def test_mixed_kinds_and_wrong_modality_count():
    with pytest.raises(ScanError, match="mixes"):
        load_scan([("a.png", GOOD_PNG), ("b.nii.gz", nifti_bytes(np.zeros((16, 16, 2), np.float32)))])
    with pytest.raises(ScanError, match="2 modality names"):
        load_scan(GOOD_PNG, name="x.png", modalities=["t1", "t2"])


# --------------------------------------------------------------------------------------------
# save_mask, mask_to_source, describe
# --------------------------------------------------------------------------------------------


def test_png_mask_for_2d_input(tmp_path):
    scan = load_scan(GOOD_PNG, name="x.png")
    mask = np.zeros(scan.shape, np.uint8)
    mask[0, 10:20, 30:40] = 1
    data = save_mask(scan, mask, tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes() == data
    back = np.asarray(Image.open(io.BytesIO(data)))
    assert back.shape == (64, 64) and set(np.unique(back)) == {0, 255}
    np.testing.assert_array_equal(back > 0, mask[0] > 0)
    assert save_mask(scan, mask) == data  # default for 2D: PNG, nothing written
    np.testing.assert_array_equal(mask_to_source(scan, mask), mask[0])
    nii = nib.Nifti1Image.from_bytes(save_mask(scan, mask, fmt="nifti", path=tmp_path / "m.nii"))
    assert nii.shape == (64, 64, 1)


def test_save_mask_rejects_misuse(tmp_path):
    volume = load_scan(NIB_DATA / "anatomical.nii")
    good = np.zeros(volume.shape, np.uint8)
    with pytest.raises(ValueError, match="PNG holds one slice"):
        save_mask(volume, good, fmt="png")
    with pytest.raises(ValueError, match="does not match"):
        save_mask(volume, good, tmp_path / "m.png", fmt="nifti")
    with pytest.raises(ValueError, match="shape"):
        save_mask(volume, good[1:])
    with pytest.raises(ValueError, match="integer labels"):
        save_mask(volume, good + 0.5)
    with pytest.raises(ValueError, match="unknown mask format"):
        save_mask(volume, good, fmt="mha")
    with pytest.raises(ValueError, match="must end in"):
        save_mask(volume, good, tmp_path / "m.mha")
    assert not list(tmp_path.iterdir())


def test_describe_is_plain_data():
    scan = load_scan(NIB_DATA / "example4d.nii.gz")
    info = describe(scan)
    assert info["shape"] == [24, 96, 128] and info["channels"] == 2
    assert info["format"] == "nifti" and info["orientation"] == "LAS"
    assert info["modalities"] == ["channel0", "channel1"]
    np.testing.assert_allclose(info["spacing_mm"], [2.2, 2.0, 2.0], atol=1e-5)
    assert len(info["intensity_range"]) == 2 and info["has_label"] is False
    import json

    json.dumps(info)
