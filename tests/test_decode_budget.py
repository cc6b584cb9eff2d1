"""The decode budget: bombs built here are refused with the budget's message, the reserved bytes
always return to zero, concurrent reads never hold more than the budget, and the excess waits a
bounded time and then gets DecodeBusy. The budget is set small (a few MiB), so every test is fast.
"""

from __future__ import annotations

import gzip
import struct
import sys
import threading
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from seg_core.scans import DecodeBusy, ScanError, budget, limits, load_scan, set_decode_budget
from seg_core.scans.images import check_image_size

sys.path.insert(0, str(Path(__file__).resolve().parent))
from malformed import _brain, _nifti_header, _png, zip_bytes  # noqa: E402

MIB = 1024 * 1024
#: A DICOM preamble, signature and the first bytes of a File Meta tag: what passes every sniff.
DICM = b"\x00" * 128 + b"DICM\x02\x00"


@pytest.fixture
def small_budget():
    """A process-wide budget of 4 MiB and a 0.3 s wait; the default one is restored afterwards."""
    shared = set_decode_budget(4 * MIB, wait_s=0.3)
    yield shared
    assert shared.reserved == 0, f"{shared.reserved} bytes still reserved"
    set_decode_budget(None)


def _volume(shape: tuple[int, int, int], seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).normal(100, 20, shape).astype(np.float32)
    return gzip.compress(nib.Nifti1Image(data, np.diag([-1.0, -1.0, 1.0, 1.0])).to_bytes(), compresslevel=1, mtime=0)


def test_decode_busy_is_exported_and_is_not_the_files_fault():
    import seg_core.scans

    assert "DecodeBusy" in seg_core.scans.__all__ and not issubclass(DecodeBusy, ScanError)
    busy = DecodeBusy(2.5, 3 * MIB, 4 * MIB)
    assert busy.retry_after_s == 2.5 and "try again in 3 s" in str(busy) and "busy decoding other uploads" in str(busy)


def test_a_zip_of_zeros_is_not_inflated(small_budget):
    bomb = zip_bytes({"case/slice.dcm": bytes(64 * MIB), "case/zeros.png": bytes(64 * MIB)})
    assert len(bomb) < 200_000
    with pytest.raises(ScanError, match="No readable DICOM|None of the files"):
        load_scan(bomb, name="zeros.zip")
    # Each member was judged from its first 4 KiB (and the DICOM reader tried those 4 KiB): far below
    # the 4 MiB budget, let alone the 128 MiB they expand to.
    assert small_budget.peak <= 4 * 4096


def test_a_dicom_signature_followed_by_zeros_is_not_inflated(small_budget):
    bomb = zip_bytes({"case/slice.dcm": b"\x00" * 128 + b"DICM" + bytes(64 * MIB)})
    with pytest.raises(ScanError, match="No readable DICOM"):
        load_scan(bomb, name="signature.zip")
    assert small_budget.peak <= 4 * 4096
    with pytest.raises(ScanError, match="DICOM signature but no DICOM header"):
        load_scan(b"\x00" * 128 + b"DICM" + bytes(4096), name="zeros.dcm")


def test_a_zip_member_that_looks_like_a_scan_is_refused_at_the_budget(small_budget):
    bomb = zip_bytes({"case/slice.dcm": DICM + bytes(16 * MIB)})
    with pytest.raises(ScanError, match=r"more than the whole decode budget \(4\.0 MiB") as raised:
        load_scan(bomb, name="dicm.zip")
    assert "'dicm' needs at least 16.0 MiB" in str(raised.value)
    assert small_budget.peak <= small_budget.capacity


def test_a_gzip_bomb_is_refused_at_the_budget(small_budget):
    bomb = gzip.compress(DICM + bytes(16 * MIB), compresslevel=1, mtime=0)
    with pytest.raises(ScanError, match="more than the whole decode budget"):
        load_scan(bomb, name="scan.dcm.gz")
    assert small_budget.peak <= small_budget.capacity


def test_a_nifti_declaring_a_huge_shape_is_refused_before_inflating(small_budget):
    # 2048 x 2048 x 8 int16 (64 MiB, within the voxel limit) declared, a few bytes of data.
    bomb = gzip.compress(_nifti_header([3, 2048, 2048, 8], np.int16, bytes(4096)), mtime=0)
    with pytest.raises(ScanError, match=r"needs at least 64\.0 MiB.*more than the whole decode budget"):
        load_scan(bomb, name="huge.nii.gz")
    assert small_budget.peak < 64 * 1024  # the header peeks only


def test_a_zip_header_that_lies_about_sizes(small_budget):
    liar = bytearray(zip_bytes({"a.png": DICM + bytes(100_000)}))
    struct.pack_into("<I", liar, 22, 5000)  # local header: uncompressed size
    central = liar.find(b"PK\x01\x02")
    struct.pack_into("<I", liar, central + 24, 5000)  # central directory
    # zipfile stops inflating at the declared size, and the CRC then shows the member is damaged.
    with pytest.raises(ScanError, match="larger than the archive says|is damaged"):
        load_scan(bytes(liar), name="liar.zip")
    assert small_budget.peak <= 5000
    # Declaring more than it holds: the unused declared bytes are given back, and the scan loads.
    image = _png(_brain())
    generous = bytearray(zip_bytes({"slice.png": image}))
    struct.pack_into("<I", generous, 22, 3 * MIB)
    central = generous.find(b"PK\x01\x02")
    struct.pack_into("<I", generous, central + 24, 3 * MIB)
    scan = load_scan(bytes(generous), name="generous.zip")
    assert scan.array.shape == (1, 1, 64, 64)


def test_one_upload_larger_than_the_budget_is_refused_at_once(small_budget):
    set_decode_budget(256 * 1024, wait_s=30.0)
    start = time.monotonic()
    with pytest.raises(ScanError, match="more than the whole decode budget"):
        load_scan(_volume((64, 64, 40)), name="big.nii.gz")
    assert time.monotonic() - start < 10  # refused without waiting the 30 s
    assert budget.decode_budget().reserved == 0


def _need(data: bytes, name: str) -> int:
    """Bytes one read of ``data`` reserves at its peak, measured alone under a roomy budget."""
    roomy = set_decode_budget(256 * MIB, wait_s=0.0)
    load_scan(data, name=name)
    return roomy.peak


def test_concurrent_reads_never_hold_more_than_the_budget(small_budget):
    volumes = [_volume((48, 48, 24), seed) for seed in range(8)]
    need = _need(volumes[0], "v.nii.gz")
    assert 200_000 < need < 1 * MIB
    shared = set_decode_budget(int(2.5 * need), wait_s=30.0)  # room for two reads at a time
    outcomes: list[object] = []

    def read(data: bytes) -> None:
        try:
            outcomes.append(load_scan(data, name="v.nii.gz").array.shape)
        except Exception as exc:  # noqa: BLE001 - the assertion below says which
            outcomes.append(exc)

    threads = [threading.Thread(target=read, args=(v,)) for v in volumes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # Each read either loads or, when the reads holding bytes all wait on each other, the youngest
    # gives way with DecodeBusy: nothing else, and never more held than the budget.
    loaded = [o for o in outcomes if o == (1, 24, 48, 48)]
    assert len(outcomes) == len(volumes) and len(loaded) >= 2, outcomes
    assert all(o == (1, 24, 48, 48) or isinstance(o, DecodeBusy) for o in outcomes), outcomes
    assert need <= shared.peak <= shared.capacity
    assert shared.reserved == 0


def test_uploads_waiting_on_each_other_do_not_deadlock():
    shared = set_decode_budget(10 * MIB, wait_s=20.0)
    try:
        older, younger = budget.Reservation(shared, "older"), budget.Reservation(shared, "younger")
        older.grow(6 * MIB)
        younger.grow(3 * MIB)
        results: dict[str, object] = {}

        def grow(holder: budget.Reservation) -> None:
            start = time.monotonic()
            try:
                holder.grow(3 * MIB)
                results[holder.name] = time.monotonic() - start
            except DecodeBusy as exc:
                results[holder.name] = exc

        first = threading.Thread(target=grow, args=(older,))
        first.start()
        time.sleep(0.3)  # the older one waits: the younger still runs, and may release
        assert "older" not in results and shared.reserved == 9 * MIB
        second = threading.Thread(target=grow, args=(younger,))
        second.start()
        first.join(5)
        second.join(5)
        # Both waiting on each other: the younger gave way at once (not after 20 s), the older went on.
        assert isinstance(results["younger"], DecodeBusy) and younger.held == 0
        assert isinstance(results["older"], float) and results["older"] < 5
        assert shared.reserved == older.held == 9 * MIB and shared.peak <= shared.capacity
        older.close()
        assert shared.reserved == 0
    finally:
        set_decode_budget(None)


def test_the_excess_waits_then_gets_decode_busy(small_budget):
    data = _volume((48, 48, 24))
    need = _need(data, "v.nii.gz")
    shared = set_decode_budget(2 * need, wait_s=0.4)
    holder = budget.Reservation(shared, "another upload")
    holder.grow(shared.capacity - need // 2)  # another upload holds nearly everything
    outcomes: list[object] = []
    waited: list[float] = []

    def read() -> None:
        start = time.monotonic()
        try:
            outcomes.append(load_scan(data, name="v.nii.gz"))
        except Exception as exc:  # noqa: BLE001 - the assertion below says which
            outcomes.append(exc)
        waited.append(time.monotonic() - start)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(isinstance(o, DecodeBusy) for o in outcomes) and len(outcomes) == 4, outcomes
    assert all(o.retry_after_s >= 0.4 for o in outcomes)  # type: ignore[union-attr]
    assert min(waited) >= 0.35 and max(waited) < 10
    assert shared.reserved == holder.held and shared.peak <= shared.capacity
    # When the other upload finishes while they wait, the waiting reads go through.
    set_decode_budget(shared.capacity, wait_s=10.0)
    shared, holder = budget.decode_budget(), budget.Reservation(budget.decode_budget(), "another upload")
    holder.grow(shared.capacity - need // 2)
    outcomes.clear()
    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    holder.close()
    for t in threads:
        t.join(30)
    assert [o.array.shape for o in outcomes] == [(1, 24, 48, 48)] * 2  # type: ignore[union-attr]
    assert shared.reserved == 0 and shared.peak <= shared.capacity


def test_the_budget_comes_back_after_an_unexpected_failure(small_budget, monkeypatch):
    from seg_core.scans import nifti

    def broken(*args, **kwargs):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(nifti, "volume_scan", broken)
    with pytest.raises(ScanError, match="RuntimeError inside the decoder"):
        load_scan(_volume((32, 32, 8)), name="v.nii.gz")
    assert small_budget.reserved == 0 and small_budget.peak > 0


def test_image_size_limits_quote_the_numbers_they_apply(monkeypatch):
    # An 8000x8000 grayscale PNG holds 64,000,000 values: under the 67,108,864 limit, so accepted.
    check_image_size("big.png", 8000, 8000, 1, limits.MAX_VOXELS, channels=1)
    with pytest.raises(ScanError) as raised:
        check_image_size("big.png", 8000, 8000, 1, limits.MAX_VOXELS, channels=3)
    message = str(raised.value)
    assert "8000x8000 pixels x 1 page(s) x 3 colour channels = 192,000,000 values" in message
    assert "at most 67,108,864" in message
    # End to end with a lowered limit: a gray image under it loads, a colour one over it is refused.
    monkeypatch.setattr(limits, "MAX_VOXELS", 70 * 70)
    gray = np.tile(_brain(64), (1, 1))
    assert load_scan(_png(gray), name="gray.png").array.shape == (1, 1, 64, 64)
    colour = np.stack([gray, gray // 2, gray // 3], axis=-1)
    with pytest.raises(ScanError, match=r"64x64 pixels x 1 page\(s\) x 3 colour channels = 12,288 values.*at most 4,900"):
        load_scan(_png(colour), name="colour.png")


def test_the_budget_is_set_from_the_environment(monkeypatch):
    monkeypatch.setenv(budget.ENV_BUDGET_MB, "7")
    assert budget.default_capacity() == 7 * MIB
    monkeypatch.setenv(budget.ENV_BUDGET_MB, "lots")
    with pytest.raises(ValueError, match="BRAINSEG_DECODE_BUDGET_MB must be a number, got 'lots'"):
        budget.default_capacity()
    monkeypatch.delenv(budget.ENV_BUDGET_MB)
    assert budget.DEFAULT_FLOOR <= budget.default_capacity() <= budget.DEFAULT_CAP


def test_decode_busy_passes_through_every_reader(small_budget):
    """No reader's own error handling turns DecodeBusy into a ScanError about the file."""
    from malformed import _dicom, _tiff16_rgb

    shared = set_decode_budget(1 * MIB, wait_s=0.05)
    holder = budget.Reservation(shared, "another upload")
    holder.grow(shared.capacity)
    uploads = {
        "slice.png": _png(_brain()),
        "rgb48.tiff": _tiff16_rgb(),  # decoded by tifffile
        "slice.dcm": _dicom(_brain().astype(np.int16)),
        "case.zip": zip_bytes({"case/slice.png": _png(_brain())}),
        "v.nii.gz": _volume((32, 32, 8)),
    }
    try:
        for name, data in uploads.items():
            with pytest.raises(DecodeBusy):
                load_scan(data, name=name)
    finally:
        holder.close()
    assert shared.reserved == 0
    assert load_scan(uploads["slice.dcm"], name="slice.dcm").array.shape == (1, 1, 64, 64)
