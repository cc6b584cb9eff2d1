"""Hardening: the malformed corpus through the readers, the CLI and the REST API; property-based
fuzzing of the readers; privacy of uploads and logs; nothing written outside a temporary folder.

Every corpus entry must end in its clear error (or load, for unusual-but-valid files), quickly, with
bounded memory, without writing anywhere but a temporary folder, and without a PatientName ever
reaching a log, an error message or an answer.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from seg_core.api import create_app
from seg_core.scans import MAX_CHANNELS, MIN_SIDE, Scan, ScanError, describe, load_scan, save_mask

sys.path.insert(0, str(Path(__file__).resolve().parent))
from malformed import CORPUS, PATIENT_ID, PATIENT_NAME, Malformed, _brain, _dicom, _png, write_corpus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SECRETS = ("Doe", "Jane", PATIENT_ID, "19700101")
#: Peak Python-tracked memory one corpus file may cost the readers (they are all under 2 MB).
MEMORY_BOUND = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Malformed, Path]]:
    return {entry.filename: (entry, path) for entry, path in write_corpus(tmp_path_factory.mktemp("malformed"))}


def check_scan(scan: Scan) -> None:
    """What every consumer relies on, for any scan a reader returns."""
    c, d, h, w = scan.array.shape
    assert scan.array.dtype == np.float32 and np.isfinite(scan.array).all()
    assert 1 <= c <= MAX_CHANNELS and d >= 1 and h >= MIN_SIDE and w >= MIN_SIDE
    assert len(scan.modalities) == c and len(scan.spacing) == 3 and all(s > 0 for s in scan.spacing)
    json.dumps(describe(scan), allow_nan=True)


# --------------------------------------------------------------------------------------------
# Writes outside a temporary folder, seen by a Python audit hook
# --------------------------------------------------------------------------------------------

_WRITES: list[str] = []
_WATCHING = threading.Event()
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _audit(event: str, args: tuple) -> None:
    if not _WATCHING.is_set() or event != "open":
        return
    path, mode, flags = (tuple(args) + (None, None, None))[:3]
    writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & _WRITE_FLAGS)
    if writing and isinstance(path, str | bytes | os.PathLike):
        _WRITES.append(os.fsdecode(path))


sys.addaudithook(_audit)


class WatchWrites:
    """Record every file opened for writing (any thread) while active; allowed: under ``allowed`` only."""

    def __init__(self, allowed: Path) -> None:
        self.allowed = str(allowed.resolve())

    def __enter__(self) -> WatchWrites:
        self.dont_write_bytecode = sys.dont_write_bytecode
        sys.dont_write_bytecode = True  # importing a module must not count as a write
        _WRITES.clear()
        _WATCHING.set()
        return self

    def __exit__(self, *exc: object) -> None:
        _WATCHING.clear()
        sys.dont_write_bytecode = self.dont_write_bytecode

    @property
    def outside(self) -> list[str]:
        return [p for p in _WRITES if not os.path.realpath(p).startswith(self.allowed) and p != os.devnull]


def test_the_write_watch_sees_writes_from_any_thread(tmp_path: Path) -> None:
    (tmp_path / "inside").mkdir()
    with WatchWrites(tmp_path / "inside") as watch:
        (tmp_path / "inside" / "ok.txt").write_text("fine")
        worker = threading.Thread(target=(tmp_path / "outside.txt").write_bytes, args=(b"caught",))
        worker.start()
        worker.join()
        os.close(os.open(tmp_path / "raw.bin", os.O_WRONLY | os.O_CREAT))
    assert watch.outside == [str(tmp_path / "outside.txt"), str(tmp_path / "raw.bin")]


# --------------------------------------------------------------------------------------------
# The corpus through the readers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", CORPUS, ids=[e.filename for e in CORPUS])
def test_corpus_through_the_readers(entry: Malformed, corpus, tmp_path: Path) -> None:
    _, path = corpus[entry.filename]
    data = path.read_bytes()
    for source, kwargs in ((data, {"name": entry.filename}), (path, {})):
        tracemalloc.start()
        try:
            with WatchWrites(tmp_path) as watch:
                if entry.loads:
                    check_scan(load_scan(source, **kwargs))
                else:
                    with pytest.raises(ScanError, match=f"(?i){entry.error}") as raised:
                        load_scan(source, **kwargs)
                    message = str(raised.value)
                    assert message and "Traceback" not in message and not any(s in message for s in SECRETS)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < MEMORY_BOUND, f"{entry.filename} needed {peak / 2**20:.0f} MiB"
        assert watch.outside == []


def test_corpus_files_are_small(corpus) -> None:
    assert all(path.stat().st_size < 2 * 1024 * 1024 for _, path in corpus.values())


def test_gzip_wrapped_dicom_without_preamble_still_loads() -> None:
    pixels = (np.arange(64 * 64).reshape(64, 64) % 300).astype(np.int16)
    raw_dataset = _dicom(pixels)[132:]  # no preamble, no "DICM": starts with the group 0002 meta tags
    assert load_scan(gzip.compress(raw_dataset), name="slice.dcm.gz").shape == (1, 64, 64)


# --------------------------------------------------------------------------------------------
# The corpus through the CLI: one process, as a user runs it
# --------------------------------------------------------------------------------------------

_CLI_DRIVER = r"""
import contextlib, io, json, logging, os, sys
writes = []
allowed = os.path.realpath(sys.argv[1])
def audit(event, args):
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC))
        if writing and isinstance(path, (str, bytes, os.PathLike)):
            p = os.path.realpath(os.fsdecode(path))
            if not p.startswith(allowed) and p != os.devnull:
                writes.append(p)
class CurrentStderr:  # log records go to whatever stderr is now, so each run's lines are captured
    def write(self, text): sys.stderr.write(text)
    def flush(self): sys.stderr.flush()
jobs = json.loads(sys.argv[2])
logging.basicConfig(stream=CurrentStderr(), level=logging.WARNING, format="%(message)s")
from seg_core.cli import main
sys.addaudithook(audit)
results = {}
for path, out, verbose in jobs:
    err, std = io.StringIO(), io.StringIO()
    logging.getLogger().setLevel(logging.INFO if verbose else logging.WARNING)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            rc = main((["-v"] if verbose else []) + ["segment", path, "--model", "unet.figshare", "--out", out, "--json"])
        except BaseException as error:
            rc = f"crash: {type(error).__name__}: {error}"
    results[os.path.basename(path) + (" -v" if verbose else "")] = [rc, std.getvalue(), err.getvalue(), os.path.exists(out)]
print(json.dumps({"results": results, "writes": writes}))
"""


@pytest.fixture(scope="module")
def cli_results(corpus, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("cli")
    jobs = []
    for entry, path in corpus.values():
        suffix = ".png" if entry.filename.endswith((".png", ".jpg", ".tiff")) else ".nii.gz"
        jobs.append([str(path), str(work / f"{entry.filename}.mask{suffix}"), False])
    dicom = work / "patient.dcm"
    dicom.write_bytes(_dicom((np.arange(64 * 64).reshape(64, 64) % 300).astype(np.int16)))
    for path in (dicom, corpus["no_pixels.dcm"][1]):
        jobs.append([str(path), str(work / f"{path.name}.verbose.nii.gz"), True])
    env = {
        **os.environ,
        "TMPDIR": str(work),
        "HOME": str(work),
        # The session's export cache (tests/conftest.py) lies outside this folder; the CLI's ONNX exports stay inside.
        "BRAINSEG_CACHE_DIR": str(work / "brainseg-cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", _CLI_DRIVER, str(work), json.dumps(jobs)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["process_stderr"] = result.stderr
    return report


@pytest.mark.parametrize("entry", CORPUS, ids=[e.filename for e in CORPUS])
def test_corpus_through_the_cli(entry: Malformed, cli_results: dict) -> None:
    rc, stdout, stderr, wrote = cli_results["results"][entry.filename]
    if entry.loads:
        assert rc == 0, stderr
        assert wrote and json.loads(stdout)["model"] == "unet.figshare"
    else:
        assert rc == 2, (rc, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr  # one clear line, no traceback
        assert re.search(f"(?i){entry.error}", lines[0])
        assert not wrote and stdout == ""


def test_cli_writes_nothing_outside_its_temporary_folder(cli_results: dict) -> None:
    assert cli_results["writes"] == []


def test_cli_never_prints_patient_data_even_verbose(cli_results: dict) -> None:
    verbose = {k: v for k, v in cli_results["results"].items() if k.endswith(" -v")}
    assert verbose["patient.dcm -v"][0] == 0 and verbose["no_pixels.dcm -v"][0] == 2
    text = json.dumps(verbose) + cli_results["process_stderr"]
    assert not any(secret in text for secret in SECRETS)


# --------------------------------------------------------------------------------------------
# The corpus through the REST API
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> TestClient:
    client = TestClient(create_app(), raise_server_exceptions=False)
    # The first segmentation loads the model, and may export it for ONNX Runtime into the export cache
    # (a model file, no upload data): done here, so the tests below watch only what an upload writes.
    warm = client.post("/segment", files=[("files", ("warm.png", _png(_brain()), "image/png"))])
    assert warm.status_code == 200, warm.text
    return client


@pytest.mark.parametrize("entry", CORPUS, ids=[e.filename for e in CORPUS])
def test_corpus_through_the_api(entry: Malformed, corpus, client: TestClient, tmp_path: Path, monkeypatch) -> None:
    _, path = corpus[entry.filename]
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private_tmp))  # where Starlette spools large parts
    with WatchWrites(tmp_path) as watch:
        response = client.post("/segment", files=[("files", (entry.filename, path.read_bytes(), "application/octet-stream"))])
    if entry.loads:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code in (413, 422), (response.status_code, response.text)
        assert re.search(f"(?i){entry.error}", response.json()["detail"])
    assert not any(secret in response.text for secret in SECRETS)
    assert watch.outside == []
    assert list(private_tmp.iterdir()) == []  # spooled uploads are gone with the request


def test_api_upload_names_are_never_paths(client: TestClient, tmp_path: Path) -> None:
    image = io.BytesIO()
    Image.fromarray((np.indices((64, 64)).sum(0) % 255).astype(np.uint8)).save(image, format="PNG")
    with WatchWrites(tmp_path) as watch:
        response = client.post("/segment", files=[("files", ("../../../../tmp/evil.png", image.getvalue(), "image/png"))])
    assert response.status_code == 200 and watch.outside == []
    assert not Path("/tmp/evil.png").exists()


# --------------------------------------------------------------------------------------------
# Privacy: a DICOM's PatientName never reaches a log, an error or an answer
# --------------------------------------------------------------------------------------------


def test_patient_name_is_never_logged_or_echoed(client: TestClient, caplog: pytest.LogCaptureFixture, recwarn) -> None:
    valid = _dicom((np.arange(64 * 64).reshape(64, 64) % 300).astype(np.int16))
    assert PATIENT_NAME.encode() in valid  # the test file does carry it
    caplog.set_level(logging.DEBUG)
    scan = load_scan(valid, name="slice.dcm")
    texts = [json.dumps(describe(scan)), repr(scan.meta), scan.name]
    texts.append(save_mask(scan, np.zeros(scan.shape, np.uint8)).decode("latin-1"))
    for bad in (_dicom(None), valid[: len(valid) - 100], valid[:400]):
        with pytest.raises(ScanError) as raised:
            load_scan(bad, name="slice.dcm")
        texts.append(str(raised.value))
    files = [("files", (f"IM{i}.dcm", valid, "application/dicom")) for i in range(2)]
    for request in (files[:1], files, [("files", ("x.dcm", _dicom(None), "application/dicom"))]):
        texts.append(client.post("/segment", files=request).text)
        texts.append(client.post("/segment", params={"format": "nifti"}, files=request).text)
    texts += [record.getMessage() for record in caplog.records] + [str(w.message) for w in recwarn]
    leaks = [t for t in texts if any(secret in t for secret in SECRETS)]
    assert leaks == []
    assert any(record.name.startswith("seg_core") for record in caplog.records)  # logging was on


# --------------------------------------------------------------------------------------------
# Property-based fuzzing of the readers (hypothesis)
# --------------------------------------------------------------------------------------------


def _seed_files() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    gray = (rng.random((24, 20)) * 255).astype(np.uint8)
    files: dict[str, bytes] = {}
    for fmt, ext in (("PNG", "png"), ("JPEG", "jpg"), ("TIFF", "tiff")):
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, format=fmt)
        files[f"slice.{ext}"] = buffer.getvalue()
    volume = rng.normal(size=(20, 18, 3)).astype(np.float32)
    raw = nib.Nifti1Image(volume, np.eye(4)).to_bytes()
    files["vol.nii"] = raw
    files["vol.nii.gz"] = gzip.compress(raw, mtime=0)
    files["slice.dcm"] = _dicom((rng.random((20, 20)) * 1000).astype(np.int16))
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("case/1.png", files["slice.png"])
        archive.writestr("case/2.png", files["slice.png"])
        archive.writestr("case/2_mask.png", files["slice.png"])
    files["case.zip"] = zipped.getvalue()
    return files


SEEDS = _seed_files()
NAMES = [*SEEDS, "upload", "scan.nii.gz", "x.dcm", "x.png", "x.zip", "x.gz", "notes.txt", "a/../b.png"]


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, insert: bytes) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        if out:
            out[position % len(out)] = value
    if insert and out:
        at = edits[0][0] % len(out) if edits else 0
        out[at:at] = insert
    if cut is not None and out:
        out = out[: cut % (len(out) + 1)]
    return bytes(out)


def reader_outcome(source, **kwargs) -> None:
    """The property: a valid scan or a ScanError with a message; any other exception fails the test."""
    try:
        scan = load_scan(source, **kwargs)
    except ScanError as error:
        assert str(error).strip()
        # Foreseen: the safety net in load_scan (a decoder failing in a way no check caught) was not needed.
        assert not getattr(error, "unexpected", False), str(error)
        return
    check_scan(scan)


FUZZ = settings(max_examples=120, deadline=3000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@FUZZ
# Found by longer runs of this test, kept as regressions: a damaged DICOM transfer syntax, a DICOM
# element that no longer decodes, a TIFF whose strip says it holds no pixels.
@example(seed="slice.dcm", edits=[(236, 0)], cut=None, insert=b"", rename=None)
@example(seed="slice.dcm", edits=[(594, 69)], cut=None, insert=b"", rename=None)
@example(seed="slice.tiff", edits=[(610, 1)], cut=None, insert=b"", rename=None)
@given(
    seed=st.sampled_from(sorted(SEEDS)),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=6),
    cut=st.none() | st.integers(0, 1 << 20),
    insert=st.binary(max_size=16),
    rename=st.none() | st.sampled_from(NAMES),
)
def test_mutated_valid_files_give_a_scan_or_a_scan_error(seed: str, edits, cut, insert, rename) -> None:
    reader_outcome(mutate(SEEDS[seed], edits, cut, insert), name=rename or seed)


@FUZZ
@given(data=st.binary(max_size=2048), name=st.none() | st.sampled_from(NAMES))
def test_random_bytes_give_a_scan_or_a_scan_error(data: bytes, name: str | None) -> None:
    reader_outcome(data, name=name)


@FUZZ
@given(
    members=st.lists(
        st.tuples(st.sampled_from(NAMES), st.sampled_from(sorted(SEEDS)), st.integers(0, 1 << 16)), min_size=1, max_size=4
    )
)
def test_multi_file_uploads_give_a_scan_or_a_scan_error(members) -> None:
    files = [(name, SEEDS[seed][: cut or None]) for name, seed, cut in members]
    reader_outcome(files)
