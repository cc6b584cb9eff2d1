"""The REST API: endpoints with FastAPI's test client, schemathesis over the OpenAPI schema on 127.0.0.1,
and concurrent sessions (a conventional and a spiking model) giving exactly the sequential answers."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import httpx
import nibabel as nib
import numpy as np
import pytest
import schemathesis
import torch
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from PIL import Image

from seg_core.api import BackgroundServer, create_app
from seg_core.inference import Segmenter
from seg_core.samples import load_sample, sample_file
from seg_core.scans import load_scan, save_mask
from seg_core.weights import WEIGHTS_DIR, load_model, read_config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import PERCENTILE, UNNORMALIZED, save_tiny_model, weights_config  # noqa: E402

SPIKING_ID = "tcsa_snn.phantom"


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped U-Net and an untrained spiking model (T=4 time steps), in a temporary weights folder."""
    folder = tmp_path_factory.mktemp("weights")
    shutil.copytree(WEIGHTS_DIR / "unet.figshare", folder / "unet.figshare")
    fields = {"id": SPIKING_ID, "normalization": PERCENTILE, "threshold": 0.5, "dataset": "phantom", "spiking": True}
    save_tiny_model(folder / SPIKING_ID, "tcsa_snn", {"width": 8, "in_channels": 1}, 64, half=False, **fields)
    return folder


@pytest.fixture(scope="module")
def client(weights_dir: Path) -> TestClient:
    return TestClient(create_app(weights_dir), raise_server_exceptions=False)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(name: str, data: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream"))]


def mask_of(answer: dict) -> np.ndarray:
    data = base64.b64decode(answer["mask"]["base64"])
    if answer["mask"]["format"] == "png":
        return np.asarray(Image.open(io.BytesIO(data)))
    return np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(data)).dataobj)


# --------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "version": "0.1.0", "models": 2}
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/models", "/segment", "/samples", "/samples/{name}"} <= set(paths)


def test_models_lists_ids_inputs_and_metrics(client: TestClient) -> None:
    models = {m["id"]: m for m in client.get("/models").json()}
    assert set(models) == {"unet.figshare", SPIKING_ID}
    unet = models["unet.figshare"]
    shipped = read_config(WEIGHTS_DIR / "unet.figshare")
    assert unet["inputs"]["modalities"] == ["t1c"] and unet["inputs"]["input_size"] == shipped["input_size"]
    assert 0.7 < unet["metrics"]["figshare"]["dice_mean"] < 0.8 and not unet["spiking"]
    assert models[SPIKING_ID]["spiking"] and models[SPIKING_ID]["metrics"] == {}


def test_segment_a_png_gives_figures_and_the_same_mask_as_the_library(client: TestClient) -> None:
    filename, data = sample_file("phantom-2d")
    response = client.post("/segment", files=upload(filename, data), data={"model": "unet.figshare"})
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = Segmenter(load_model("unet.figshare"))(load_scan(data, name=filename))
    assert np.array_equal(mask_of(answer) > 0, expected.mask[0] > 0)
    assert answer["figures"]["tumor_pixels"] == int(expected.mask.sum()) > 0
    assert answer["figures"]["area_unit"] == "px" and answer["input"]["shape"] == [1, 128, 128]
    assert answer["mask"]["format"] == "png" and "not a medical device" in answer["disclaimer"]
    assert answer["backend"] == expected.backend and answer["backend"].startswith("onnxruntime")  # where it ran


def test_segment_a_volume_as_nifti_file(client: TestClient) -> None:
    filename, data = sample_file("phantom-3d")
    response = client.post("/segment", params={"format": "nifti"}, files=upload(filename, data))
    assert response.status_code == 200 and response.headers["content-type"] == "application/gzip"
    summary = json.loads(response.headers["x-segmentation"])
    mask = nib.Nifti1Image.from_bytes(gzip.decompress(response.content))
    source = nib.Nifti1Image.from_bytes(gzip.decompress(data))
    assert mask.shape == source.shape and np.allclose(mask.affine, source.affine)
    assert summary["tumor_pixels"] == int(np.asarray(mask.dataobj).sum()) > 0 and summary["area_unit"] == "mm2"
    assert summary["backend"] in ("onnxruntime", "onnxruntime-int8", "torch")
    assert client.post("/segment", params={"format": "png"}, files=upload(filename, data)).status_code == 422


def test_segment_several_files_of_one_case(client: TestClient) -> None:
    scan, _ = load_sample("phantom-3d")
    affine = np.diag([-1.0, -1.0, 3.0, 1.0])
    volume = np.ascontiguousarray(scan.array[0].transpose(2, 1, 0))
    files = [
        (
            "files",
            (f"case_{suffix}.nii.gz", gzip.compress(nib.Nifti1Image(volume * factor, affine).to_bytes()), "application/gzip"),
        )
        for suffix, factor in (("t1ce", 1.0), ("flair", 0.5))
    ]
    response = client.post("/segment", files=files, data={"model": "unet.figshare"})
    assert response.status_code == 200, response.text
    assert response.json()["input"]["modalities"] == ["t1c", "flair"] and response.json()["mask"]["format"] == "nifti"


def test_modalities_override_and_missing_modality(client: TestClient) -> None:
    filename, data = sample_file("phantom-2d")
    ok = client.post("/segment", files=upload(filename, data), data={"modalities": "t1c"})
    assert ok.status_code == 200 and ok.json()["input"]["modalities"] == ["t1c"]
    missing = client.post("/segment", files=upload(filename, data), data={"modalities": "flair"})
    assert missing.status_code == 422 and "needs T1 contrast-enhanced" in missing.json()["detail"]


def test_bad_uploads_are_4xx_with_the_reader_message(client: TestClient) -> None:
    renamed = client.post("/segment", files=upload("scan.nii.gz", b"this is not an MRI"))
    assert renamed.status_code == 422 and "renamed" in renamed.json()["detail"]
    empty = client.post("/segment", files=upload("scan.png", b""))
    assert empty.status_code == 422 and "empty" in empty.json()["detail"].lower()
    unknown = client.post("/segment", files=upload("x.png", b"x"), data={"model": "../../etc/passwd"})
    assert unknown.status_code == 404 and "unet.figshare" in unknown.json()["detail"]
    assert client.post("/segment").status_code == 422  # no file at all
    assert client.post("/segment", params={"format": "jpeg"}, files=upload("x.png", b"x")).status_code == 422


def test_upload_over_the_limit_is_413(weights_dir: Path) -> None:
    small = TestClient(create_app(weights_dir, max_upload_bytes=10_000))
    response = small.post("/segment", files=upload("big.png", bytes(20_000)))
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


def test_samples_phantoms_always(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRAINSEG_DATA_ROOT", raising=False)
    listing = client.get("/samples").json()
    assert [s["name"] for s in listing] == ["phantom-2d", "phantom-3d"]
    detail = client.get("/samples/phantom-3d").json()
    assert detail["scan"]["shape"] == [24, 96, 96] and detail["ground_truth"]["tumor_pixels"] > 0
    file = client.get(listing[0]["file_url"])
    assert file.status_code == 200 and file.content == sample_file("phantom-2d")[1]
    mask = client.get("/samples/phantom-2d/mask")
    assert mask.headers["content-type"] == "image/png"
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(mask.content))) > 0, load_sample("phantom-2d")[1][0] > 0)
    missing = client.get("/samples/nope")
    assert missing.status_code == 404 and "phantom-2d" in missing.json()["detail"]
    assert client.get("/samples/nope/file").status_code == 404


@pytest.mark.data
def test_samples_from_the_data_root(client: TestClient, data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRAINSEG_DATA_ROOT", str(data_root))
    names = [s["name"] for s in client.get("/samples").json()]
    figshare = next(n for n in names if n.startswith("figshare-"))
    detail = client.get(f"/samples/{figshare}").json()
    assert detail["source"] == "figshare" and detail["ground_truth"]["tumor_pixels"] > 0


def test_masks_written_by_the_api_overlay_the_input() -> None:
    scan, truth = load_sample("phantom-3d")
    written = load_scan(save_mask(scan, truth), name="m.nii.gz")
    assert np.array_equal(written.array[0] > 0.5, truth > 0)


# --------------------------------------------------------------------------------------------
# Concurrency: 8 sessions at once give exactly the sequential answers
# --------------------------------------------------------------------------------------------


def session_scans() -> list[tuple[str, bytes]]:
    """Eight different scans: the 2D phantom shifted, and (every fourth) the 3D phantom rolled."""
    image = np.asarray(Image.open(io.BytesIO(sample_file("phantom-2d")[1])))
    volume_name, volume = sample_file("phantom-3d")
    scans = []
    for index in range(8):
        if index % 4 == 3:
            data = nib.Nifti1Image.from_bytes(gzip.decompress(volume))
            rolled = nib.Nifti1Image(np.roll(np.asarray(data.dataobj), index, axis=0), data.affine)
            scans.append((f"s{index}.nii.gz", gzip.compress(rolled.to_bytes(), mtime=0)))
        else:
            scans.append((f"s{index}.png", png_bytes(np.roll(image, (5 * index, -3 * index), axis=(0, 1)))))
    return scans


def test_concurrent_sessions_match_sequential_results(weights_dir: Path) -> None:
    scans = session_scans()
    jobs = [(scan, model) for scan in scans for model in ("unet.figshare", SPIKING_ID)]
    with BackgroundServer(create_app(weights_dir)) as server, httpx.Client(base_url=server.url, timeout=120) as http:

        def run(job: tuple[tuple[str, bytes], str]) -> dict:
            (name, data), model = job
            response = http.post("/segment", files=upload(name, data), data={"model": model})
            assert response.status_code == 200, response.text
            return response.json()

        sequential = [run(job) for job in jobs]
        results: dict[int, dict] = {}
        errors: list[BaseException] = []

        def session(index: int) -> None:
            try:
                for number in range(index, len(jobs), 8):  # each session sends both models, interleaved with the others
                    results[number] = run(jobs[number])
            except BaseException as error:  # reported below, in the test's thread
                errors.append(error)

        threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    assert not errors, errors
    assert sorted(results) == list(range(len(jobs)))
    for number, expected in enumerate(sequential):
        got = results[number]
        assert got["model"] == expected["model"]
        assert np.array_equal(mask_of(got), mask_of(expected)), f"job {number} ({jobs[number][1]}) differs under load"
        assert {k: v for k, v in got["figures"].items()} == expected["figures"]
    # The untrained spiking model still answers something different for different scans.
    spiking = [mask_of(r) for r, (_, model) in zip(sequential, jobs, strict=True) if model == SPIKING_ID]
    assert len({m.tobytes() for m in spiking}) > 1


# --------------------------------------------------------------------------------------------
# Schemathesis over the OpenAPI schema, against the API served on 127.0.0.1
# --------------------------------------------------------------------------------------------


# The schema is built from the application at collection time (parametrisation needs it then); the
# fixture checks that the server on 127.0.0.1 serves exactly this schema, and every case is sent there.
schema = schemathesis.openapi.from_dict(create_app().openapi())


@pytest.fixture(scope="module")
def live_url(weights_dir: Path):
    with BackgroundServer(create_app(weights_dir, max_upload_bytes=2 * 1024 * 1024)) as server:
        assert httpx.get(f"{server.url}/openapi.json").json() == create_app().openapi()
        yield server.url


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema_and_never_fails_with_500(case, live_url: str) -> None:
    response = case.call(base_url=live_url, timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    # Every other check runs (status codes, content types, response schemas, negative data rejected);
    # "schema-valid data accepted" cannot hold: random bytes fit the schema but are no scan (a 422 is right).
    case.validate_response(response, excluded_checks=[schemathesis.checks.positive_data_acceptance])


class StatefulSpikingToy(torch.nn.Module):
    """A spiking-style net that keeps its membrane on the module between time steps, as ``snn.Leaky``
    does with ``mem=None``: two passes interleaved in one instance would corrupt each other."""

    def __init__(self, steps: int = 6) -> None:
        super().__init__()
        self.steps = steps
        self.scale = torch.nn.Parameter(torch.ones(1))
        self.membrane: torch.Tensor | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.membrane = torch.zeros_like(images)
        for _ in range(self.steps):
            time.sleep(0.002)  # let other threads run mid-pass, as a long real pass would
            self.membrane = 0.5 * self.membrane + images * self.scale
        return self.membrane - 0.5


def test_segmenter_lock_keeps_module_state_within_one_request(tmp_path: Path) -> None:
    from seg_core.weights import LoadedModel

    config = weights_config("toy", {}, 32, id="toy.stateful", **UNNORMALIZED)
    scans = [
        load_scan(png_bytes(((np.indices((40, 40)).sum(0) * (i + 1)) % 256).astype(np.uint8)), name=f"{i}.png") for i in range(8)
    ]

    def concurrent(segmenter: Segmenter) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.empty(0)] * len(scans)

        def run(i: int) -> None:
            out[i] = segmenter.predict_probabilities(scans[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(scans))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return out

    # torch: the backend whose modules hold state (ONNX Runtime sessions are thread-safe).
    segmenter = Segmenter(LoadedModel(StatefulSpikingToy(), config, tmp_path), batch_size=1, backend="torch")
    reference = [segmenter.predict_probabilities(scan) for scan in scans]
    assert all(np.array_equal(a, b) for a, b in zip(concurrent(segmenter), reference, strict=True))
    # The control: without the lock the same load does corrupt results, so the check above has teeth.
    segmenter._lock = contextlib.nullcontext()  # type: ignore[assignment]
    assert not all(np.array_equal(a, b) for a, b in zip(concurrent(segmenter), reference, strict=True))
