"""The API under load and hostile uploads (issue 19): body limits counted on the stream, files per
request from the readers' limit, a bounded inference queue answering 429 at once, liveness and
readiness that never wait behind inference, spiking models running concurrently, memory handed back.

No timing thresholds: each test asserts behaviour (what is answered while every inference slot is
held by a blocked fake, how many bytes the server read before refusing), so a slow machine cannot
make one fail and a regression does.
"""

from __future__ import annotations

import io
import select
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from fastapi.responses import Response
from fastapi.testclient import TestClient
from PIL import Image

from seg_core.api import BackgroundServer, create_app
from seg_core.api.memory import return_freed_memory
from seg_core.api.routes import segment as segment_route
from seg_core.inference import Segmenter
from seg_core.scans import limits, load_scan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import PERCENTILE, save_tiny_model  # noqa: E402

MiB = 1024 * 1024
SPIKING_ID = "tcsa_snn.phantom"
MODEL = {"model": SPIKING_ID}


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(name: str, data: bytes, count: int = 1) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (f"{i}{name}", data, "application/octet-stream")) for i in range(count)]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained spiking model (T=4), the one kind that used to be serialised."""
    folder = tmp_path_factory.mktemp("weights")
    fields = {"id": SPIKING_ID, "normalization": PERCENTILE, "threshold": 0.5, "dataset": "phantom", "spiking": True}
    save_tiny_model(folder / SPIKING_ID, "tcsa_snn", {"width": 8, "in_channels": 1}, 64, half=False, **fields)
    return folder


# --------------------------------------------------------------------------------------------
# Body limits
# --------------------------------------------------------------------------------------------


def test_declared_and_chunked_bodies_over_the_limit_are_413_with_the_limit_named(weights_dir: Path) -> None:
    client = TestClient(create_app(weights_dir, max_upload_bytes=10_000))
    declared = client.post("/segment", files=upload("big.png", bytes(20_000)))
    assert declared.status_code == 413 and "larger than 9.8 KiB" in declared.json()["detail"]

    def chunks():  # no Content-Length: sent chunked, counted as it arrives
        for _ in range(30):
            yield bytes(1000)

    chunked = client.post("/segment", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert chunked.status_code == 413 and "larger than" in chunked.json()["detail"]
    # Under the limit the same route still answers (the reader's 422 for bytes that are no scan).
    assert client.post("/segment", files=upload("small.png", bytes(2_000)), data=MODEL).status_code == 422


def send_chunked_until_answered(url: str, budget: int) -> tuple[int, bytes]:
    """POST a chunked multipart body of up to ``budget`` bytes; the bytes sent before an answer came, and the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /segment HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        )
        head = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.nii"\r\n\r\n'
        chunk = bytes(64 * 1024)
        pending = b"%x\r\n" % len(head) + head + b"\r\n"
        sent = 0
        sock.setblocking(False)
        while sent < budget:
            readable, writable, _ = select.select([sock], [sock], [], 30)
            if readable:
                break
            if not writable:
                raise TimeoutError("the server neither read nor answered for 30 s")
            try:
                count = sock.send(pending)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += count
            pending = pending[count:] or b"%x\r\n" % len(chunk) + chunk + b"\r\n"
        sock.settimeout(300)
        if sent >= budget:  # all sent and no answer yet (a server that reads everything): end the body
            tail = b"\r\n--b--\r\n"
            sock.sendall(pending + b"%x\r\n" % len(tail) + tail + b"\r\n0\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            part = sock.recv(65536)
            if not part:
                break
            answer += part
        return sent, answer


def test_a_chunked_body_is_refused_at_the_limit_without_reading_the_rest(weights_dir: Path) -> None:
    with BackgroundServer(create_app(weights_dir, max_upload_bytes=1 * MiB)) as server:
        sent, answer = send_chunked_until_answered(server.url, budget=256 * MiB)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        # The server stopped reading at 1 MiB: what the client got out is that plus socket buffers,
        # far from the 256 MiB it would have sent to a server that spools the whole body.
        assert sent < 64 * MiB, f"{sent / MiB:.1f} MiB were accepted before the 413"
        assert httpx.get(server.url + "/health").status_code == 200


def test_files_per_request_is_the_readers_limit(weights_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "MAX_FILES", 3)
    client = TestClient(create_app(weights_dir))
    too_many = client.post("/segment", files=upload("x.png", b"x", count=4))
    assert too_many.status_code == 400 and "Maximum number of files is 3" in too_many.json()["detail"]
    # At the limit the parser lets them through to the reader (these bytes are no scan: 422).
    assert client.post("/segment", files=upload("x.png", b"x", count=3), data=MODEL).status_code == 422


def test_the_default_files_limit_is_max_files_not_starlettes_1000(weights_dir: Path) -> None:
    client = TestClient(create_app(weights_dir))
    answer = client.post("/segment", files=upload("x.png", b"x", count=1001), data=MODEL)
    assert limits.MAX_FILES > 1001 and answer.status_code == 422  # past the parser (Starlette alone: 400 at 1000)


# --------------------------------------------------------------------------------------------
# Backpressure and liveness
# --------------------------------------------------------------------------------------------


class BlockedSegmentation:
    """Stands in for ``_segment_upload``: holds its inference slot until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)

    def __call__(self, *args: Any) -> Response:
        self.entered.release()
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never released the blocked segmentation")
        return Response(b"done", media_type="text/plain")


def test_health_and_ready_answer_and_excess_is_429_while_every_slot_is_held(
    weights_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = BlockedSegmentation()
    monkeypatch.setattr(segment_route, "_segment_upload", blocked)
    app = create_app(weights_dir, inference_workers=1, max_waiting=1)
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        answers: list[httpx.Response] = []

        def send() -> None:
            answers.append(http.post("/segment", files=upload("a.png", b"x")))

        senders = [threading.Thread(target=send) for _ in range(2)]
        for sender in senders:
            sender.start()
        assert blocked.entered.acquire(timeout=30)  # one runs (and blocks) ...
        for _ in range(600):  # ... and one waits for the only worker
            if app.state.inference_queue.snapshot()["admitted"] == 2:
                break
            threading.Event().wait(0.05)
        queue = app.state.inference_queue.snapshot()
        assert queue["running"] == 1 and queue["waiting"] == 1

        health = http.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "ok"
        ready = http.get("/ready")
        assert ready.status_code == 503  # full: a balancer should send new work elsewhere
        assert ready.json()["queue"] == {**queue, "refused": 0} and ready.json()["models"] == 1
        refused = http.post("/segment", files=upload("a.png", b"x"))
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1 and "busy" in refused.json()["detail"]

        blocked.release.set()
        for sender in senders:
            sender.join(timeout=60)
        assert [a.status_code for a in answers] == [200, 200]
        ready = http.get("/ready")
        assert ready.status_code == 200 and ready.json()["ready"] and ready.json()["queue"]["refused"] == 1


def test_bad_queue_settings_are_refused_with_a_message(weights_dir: Path) -> None:
    with pytest.raises(ValueError, match="workers >= 1"):
        create_app(weights_dir, inference_workers=0)


# --------------------------------------------------------------------------------------------
# Spiking models run concurrently
# --------------------------------------------------------------------------------------------


def test_a_spiking_model_runs_concurrently_with_the_sequential_results(weights_dir: Path) -> None:
    from seg_core.weights import load_model

    segmenter = Segmenter(load_model(SPIKING_ID, weights_dir), batch_size=1, backend="torch")
    assert getattr(segmenter.model, "reentrant_forward", False)
    scans = [
        load_scan(png_bytes(((np.indices((64, 64)).sum(0) * (i + 3)) % 256).astype(np.uint8)), name="s.png") for i in range(6)
    ]
    reference = [segmenter.predict_probabilities(scan) for scan in scans]

    inside, most_inside = 0, 0
    lock = threading.Lock()

    def count_in(module: torch.nn.Module, args: Any) -> None:
        nonlocal inside, most_inside
        with lock:
            inside += 1
            most_inside = max(most_inside, inside)
        threading.Event().wait(0.02)  # hold the pass open so the others can enter

    def count_out(module: torch.nn.Module, args: Any, output: Any) -> None:
        nonlocal inside
        with lock:
            inside -= 1

    hooks = [segmenter.model.register_forward_pre_hook(count_in), segmenter.model.register_forward_hook(count_out)]
    results: list[np.ndarray | None] = [None] * len(scans)

    def run(i: int) -> None:
        results[i] = segmenter.predict_probabilities(scans[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(scans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for hook in hooks:
        hook.remove()
    assert most_inside > 1, "the spiking model's passes were serialised"
    for got, expected in zip(results, reference, strict=True):
        assert got is not None and np.array_equal(got, expected)


# --------------------------------------------------------------------------------------------
# Memory handed back
# --------------------------------------------------------------------------------------------


def resident_bytes() -> int:
    import resource

    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_return_freed_memory_gives_fragmented_heap_pages_back() -> None:
    import ctypes.util

    if "libc" not in (ctypes.util.find_library("c") or ""):
        pytest.skip("not glibc")
    # 150k blocks of 2 KiB (malloc, not pymalloc, and below the mmap threshold): ~300 MiB of heap.
    blocks = [bytearray(2048) for _ in range(150_000)]
    keep = blocks[-1]  # one live block at the top: glibc cannot shrink the heap past it by itself
    del blocks
    before = resident_bytes()
    assert return_freed_memory()
    after = resident_bytes()
    assert before - after > 100 * MiB, f"RSS {before / MiB:.0f} -> {after / MiB:.0f} MiB"
    del keep


# --------------------------------------------------------------------------------------------
# The decode budget (seg_core.scans.budget) as the API answers it
# --------------------------------------------------------------------------------------------


@pytest.fixture
def small_decode_budget():
    from seg_core.scans import set_decode_budget

    yield set_decode_budget(8 * MiB, wait_s=0.0)
    set_decode_budget(None)  # back to the environment's


def zip_of_zeros_volume(side: int = 256, depth: int = 128) -> bytes:
    """A ~30 KB ZIP whose NIfTI member declares and holds side x side x depth float32 zeros (32 MiB)."""
    import zipfile

    import nibabel as nib

    volume = nib.Nifti1Image(np.zeros((side, side, depth), np.float32), np.eye(4)).to_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("case/t1c.nii", volume)
    return buffer.getvalue()


def test_an_upload_over_the_whole_decode_budget_is_422(weights_dir: Path, small_decode_budget: Any) -> None:
    client = TestClient(create_app(weights_dir))
    answer = client.post("/segment", files=upload("bomb.zip", zip_of_zeros_volume()), data=MODEL)
    assert answer.status_code == 422 and "decode budget" in answer.json()["detail"], answer.text
    assert small_decode_budget.reserved == 0  # everything it charged was given back


def test_a_full_decode_budget_is_503_with_retry_after_and_shows_in_ready(weights_dir: Path, small_decode_budget: Any) -> None:
    from seg_core.scans.budget import reservation

    client = TestClient(create_app(weights_dir))
    image = png_bytes(((np.indices((64, 64)).sum(0) * 3) % 256).astype(np.uint8))
    with reservation("another upload") as held:
        held.grow(small_decode_budget.capacity)  # every byte of the budget is taken
        busy = client.post("/segment", files=upload("slice.png", image), data=MODEL)
        assert busy.status_code == 503 and "busy" in busy.json()["detail"], busy.text
        assert int(busy.headers["Retry-After"]) >= 1
        ready = client.get("/ready").json()
        assert ready["decode_budget"]["reserved"] == ready["decode_budget"]["capacity"] == 8 * MiB
    assert client.post("/segment", files=upload("slice.png", image), data=MODEL).status_code == 200
