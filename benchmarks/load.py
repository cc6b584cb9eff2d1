"""Load test of the REST API: concurrent sessions segmenting different scans, conventional and spiking models.

Run: ``python benchmarks/load.py [--sessions 8] [--rounds 3] [--threads 2] [--models A,B] [--json]``.

Models: ``unet.figshare`` and a spiking model by default (the phantoms are single-channel; models
needing other sequences would answer 422). A 429 from a full inference queue is waited out as its
``Retry-After`` says and the request sent again; ``benchmarks/abuse.py`` counts those refusals.

The API is served by uvicorn on 127.0.0.1 (``seg_core.api.BackgroundServer``) from a temporary
weights folder holding the shipped weights and a spiking model: the first spiking weights in
``weights/`` if there are any, else an untrained ``tcsa_snn`` (T = 4 time steps, so membrane state
would show if it crossed requests). Each session has its own scan (the synthetic phantoms, shifted
or rolled: six 2D PNG slices and two 3D NIfTI volumes) and, every round, sends it once to each model.

First every (scan, model) pair is run once, sequentially: that is the reference (and the warm-up).
Then the sessions run at once; every answer must equal its reference exactly (mask voxels and all
figures but the time), and any error or difference is counted and makes the exit status 1.
Printed: requests, errors, mismatches, throughput, and latency p50/p95 overall and per model, next
to the sequential latency.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # tiny_models: the test models' helper

SPIKING_FALLBACK_ID = "tcsa_snn.untrained"


def build_weights(folder: Path) -> list[str]:
    """Link the shipped weights into ``folder`` and make sure one spiking model is there; returns the ids."""
    from tiny_models import PERCENTILE, save_tiny_model

    from seg_core.weights import WEIGHTS_DIR, list_weights, read_config

    ids = list_weights()
    for model_id in ids:
        (folder / model_id).symlink_to(WEIGHTS_DIR / model_id, target_is_directory=True)
    spiking = [m for m in ids if read_config(WEIGHTS_DIR / m).get("spiking")]
    if not spiking:
        fields = {"id": SPIKING_FALLBACK_ID, "normalization": PERCENTILE, "threshold": 0.5, "dataset": "none", "spiking": True}
        save_tiny_model(folder / SPIKING_FALLBACK_ID, "tcsa_snn", {"width": 16, "in_channels": 1}, 128, half=False, **fields)
        ids.append(SPIKING_FALLBACK_ID)
    return ids


def session_scans(sessions: int) -> list[tuple[str, bytes]]:
    """One different scan per session: the 2D phantom shifted, every fourth the 3D phantom rolled."""
    import nibabel as nib
    from PIL import Image

    from seg_core.samples import sample_file

    image = np.asarray(Image.open(io.BytesIO(sample_file("phantom-2d")[1])))
    volume = nib.Nifti1Image.from_bytes(gzip.decompress(sample_file("phantom-3d")[1]))
    scans = []
    for index in range(sessions):
        if index % 4 == 3:
            rolled = nib.Nifti1Image(np.roll(np.asarray(volume.dataobj), 3 * index, axis=1), volume.affine)
            scans.append((f"session{index}.nii.gz", gzip.compress(rolled.to_bytes(), mtime=0)))
        else:
            buffer = io.BytesIO()
            Image.fromarray(np.roll(image, (4 * index, -5 * index), axis=(0, 1))).save(buffer, format="PNG")
            scans.append((f"session{index}.png", buffer.getvalue()))
    return scans


def answer_key(answer: dict) -> tuple[bytes, str]:
    """What must be identical between runs: the decoded mask voxels and every figure but the time."""
    import nibabel as nib
    from PIL import Image

    data = base64.b64decode(answer["mask"]["base64"])
    if answer["mask"]["format"] == "png":
        mask = np.asarray(Image.open(io.BytesIO(data)))
    else:
        mask = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(data)).dataobj)
    return mask.tobytes(), json.dumps(answer["figures"], sort_keys=True)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=8, help="concurrent sessions (each with its own scan)")
    parser.add_argument("--rounds", type=int, default=3, help="requests per session and model")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in the server")
    parser.add_argument("--models", default="", help="comma-separated ids (default: unet.figshare and a spiking model)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()

    import httpx
    import torch

    from seg_core.api import BackgroundServer, create_app

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="brainseg-load-") as tmp:
        weights = Path(tmp) / "weights"
        weights.mkdir()
        available = build_weights(weights)
        # The phantoms are single-channel scans: models needing other sequences (BraTS) would answer 422.
        wanted = args.models.split(",") if args.models else ["unet.figshare", *[m for m in available if "snn" in m][:1]]
        unknown = sorted(set(wanted) - set(available))
        if unknown:
            parser.error(f"unknown model(s) {', '.join(unknown)}; available: {', '.join(available)}")
        model_ids = wanted
        scans = session_scans(args.sessions)
        with BackgroundServer(create_app(weights)) as server, httpx.Client(base_url=server.url, timeout=600) as http:

            def segment(scan: tuple[str, bytes], model: str) -> dict:
                for _attempt in range(60):  # a full inference queue answers 429 at once: wait as told, retry
                    response = http.post(
                        "/segment", files=[("files", (scan[0], scan[1], "application/octet-stream"))], data={"model": model}
                    )
                    if response.status_code not in (429, 503):
                        break
                    time.sleep(min(float(response.headers.get("Retry-After", 1)), 2.0))
                if response.status_code != 200:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
                return response.json()

            reference: dict[tuple[int, str], tuple[bytes, str]] = {}
            sequential: dict[str, list[float]] = {m: [] for m in model_ids}
            for index, scan in enumerate(scans):
                for model in model_ids:
                    start = time.perf_counter()
                    reference[index, model] = answer_key(segment(scan, model))
                    sequential[model].append(time.perf_counter() - start)

            latencies: dict[str, list[float]] = {m: [] for m in model_ids}
            errors: list[str] = []
            mismatches: list[str] = []
            lock = threading.Lock()
            barrier = threading.Barrier(args.sessions)

            def session(index: int) -> None:
                barrier.wait()  # all sessions start together
                for round_number in range(args.rounds):
                    for offset in range(len(model_ids)):
                        model = model_ids[(index + round_number + offset) % len(model_ids)]  # models interleave across sessions
                        start = time.perf_counter()
                        try:
                            key = answer_key(segment(scans[index], model))
                        except Exception as error:  # counted and reported, never hidden
                            with lock:
                                errors.append(f"session {index} {model}: {error}")
                            continue
                        elapsed = time.perf_counter() - start
                        with lock:
                            latencies[model].append(elapsed)
                            if key != reference[index, model]:
                                mismatches.append(f"session {index} round {round_number} {model}")

            threads = [threading.Thread(target=session, args=(i,)) for i in range(args.sessions)]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - started

    everything = [t for values in latencies.values() for t in values]
    report = {
        "sessions": args.sessions,
        "rounds": args.rounds,
        "models": model_ids,
        "torch_threads": args.threads,
        "requests": len(everything) + len(errors),
        "errors": len(errors),
        "mismatches": len(mismatches),
        "wall_s": round(wall, 2),
        "throughput_rps": round(len(everything) / wall, 2) if wall else None,
        "latency_p50_s": round(percentile(everything, 50), 3),
        "latency_p95_s": round(percentile(everything, 95), 3),
        "per_model": {
            m: {
                "requests": len(latencies[m]),
                "p50_s": round(percentile(latencies[m], 50), 3),
                "p95_s": round(percentile(latencies[m], 95), 3),
                "sequential_mean_s": round(statistics.mean(sequential[m]), 3),
            }
            for m in model_ids
        },
        "error_samples": errors[:5],
        "mismatch_samples": mismatches[:5],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['requests']} requests from {args.sessions} concurrent sessions x {args.rounds} rounds x "
            f"{len(model_ids)} models ({', '.join(model_ids)}), torch threads {args.threads}"
        )
        print(f"errors {report['errors']}, results different from the sequential run {report['mismatches']}")
        print(
            f"throughput {report['throughput_rps']} requests/s over {report['wall_s']} s; "
            f"latency p50 {report['latency_p50_s']} s, p95 {report['latency_p95_s']} s"
        )
        for model, figures in report["per_model"].items():
            print(
                f"  {model:<22} p50 {figures['p50_s']:.3f} s  p95 {figures['p95_s']:.3f} s  "
                f"(sequential {figures['sequential_mean_s']:.3f} s)"
            )
        for line in errors[:5] + mismatches[:5]:
            print(f"  ! {line}")
    return 1 if errors or mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
