"""Load and abuse suite of the REST API (issue 19): a busy clinic and an attacker at once.

Run: ``python benchmarks/abuse.py [--clients 32] [--scans 8] [--rounds 1] [--bombs 4] [--repo DIR] [--json]``.

The API runs in a child process (uvicorn, 127.0.0.1) from ``--repo`` (default: this checkout; give
a ``git worktree`` of an older commit to measure the code before a change with this same suite),
serving a temporary weights folder: ``unet.figshare`` and a spiking model (``load.build_weights``).
A sampler reads the server's resident memory (``/proc/PID/status``) every 50 ms and a prober asks
``/health`` every 100 ms throughout. Scenarios, one table row each:

1. ``sequential``: every (scan, model) pair once, one at a time: the reference masks, and the warm-up.
2. ``clients``: ``--clients`` threads, client ``i`` with scan ``i % --scans`` (2D slices and, every
   fourth, a 3D volume: volumes during slice load), sending it to every model ``--rounds`` times,
   interleaved.
3. ``clients + bombs``: the same, while ``--bombs`` threads each post a 1000 MiB bomb ``--bomb-rounds``
   times (``--bomb``: by default the ZIP whose member starts like a DICOM file, which no sniffing
   refuses, so only the decode budget bounds it; ``zip zeros`` is the bomb issue 19 measured).
4. each hostile upload alone (``--alone``): the ZIP bombs, the gzip'd DICOM bomb, the .nii.gz of
   4096x4096x4 zeros, and a 600 MiB chunked body (sent by a raw socket until the server answers).
   A server whose RSS passes ``--max-server-rss-mb`` is stopped (the machine is shared) and the
   table says so.

A normal request counts as ``ok`` (200 and the sequential mask and figures exactly), ``refused``
(429/503, which the client retries after Retry-After, at most 2 s, up to 20 times), ``mismatch`` or
``error`` (anything else: a 5xx, a dropped connection); hostile uploads are sent again after each
429, as an attacker would. Printed per scenario: requests (each 429 counts), req/s, p50 and p95
latency of the answered requests, p95 of the refusals, /health p50/p95/max (probed from a process of
its own), peak RSS of the server and its RSS 2 s after, and the counts. Exit status 1 on any
mismatch, error or 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from decode_bombs import build as build_bombs  # noqa: E402  (the bombs of issue 19, built by streaming)
from load import answer_key, build_weights, percentile, session_scans  # noqa: E402

MIB = 1024 * 1024
CHUNKED = "600 MiB chunked"
HOSTILE = ("zip zeros", "zip DICM", "gzip DICM", "nii.gz 4096^2x4", CHUNKED)

# The server, started from any checkout: only create_app(weights_dir) is assumed, which every
# version of the API has, so the same suite measures the code before and after a change.
_LAUNCH = """
import sys, torch, uvicorn
sys.path.insert(0, sys.argv[1])
from seg_core.api import create_app
torch.set_num_threads(int(sys.argv[4]))
uvicorn.run(create_app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[3]), log_level="error", access_log=False)
"""


class Server:
    """The API in a child process, with its resident memory sampled every 50 ms."""

    def __init__(self, repo: Path, weights: Path, threads: int, max_rss: int) -> None:
        self.max_rss = max_rss
        self.killed_at = 0
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-c", _LAUNCH, str(repo), str(weights), str(port), str(threads)]
        self.process = subprocess.Popen(command, cwd=repo)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API from {repo} did not start")
            time.sleep(0.2)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:  # the server is gone
            pass
        return 0

    def _sample(self) -> None:
        while not self._stop.is_set() and self.process.poll() is None:
            rss = self.rss()
            self.samples.append((time.monotonic(), rss))
            if rss > self.max_rss:  # the machine is shared: an unbounded server is stopped, and it shows
                print(f"server RSS {rss // MIB} MiB over --max-server-rss-mb: stopped", file=sys.stderr, flush=True)
                self.killed_at = rss
                self.process.kill()
            time.sleep(0.05)

    def peak_since(self, start: float) -> int:
        return max((rss for t, rss in self.samples if t >= start), default=0)

    def close(self) -> None:
        self._stop.set()
        self.process.terminate()  # our own child, by its handle
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # uvicorn waits for requests in flight; a bomb may still be one
            self.process.kill()
            self.process.wait(timeout=15)


# The probe runs in a process of its own: in this one, 32 client threads decoding masks would hold
# the GIL and add their own waits to the latency of the server's answer.
_PROBE = """
import sys, time, httpx
with httpx.Client(base_url=sys.argv[1], timeout=30) as http:
    while True:
        start = time.monotonic()
        try:
            status = http.get("/health").status_code
        except httpx.HTTPError:
            status = 0
        print(start, time.monotonic() - start, status, flush=True)
        time.sleep(0.1)
"""


class HealthProbe:
    """``GET /health`` every 100 ms from a child process; latencies of the answers since ``start``."""

    def __init__(self, url: str) -> None:
        self.results: list[tuple[float, float, int]] = []
        self.process = subprocess.Popen([sys.executable, "-c", _PROBE, url], stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:  # time.monotonic is system-wide on Linux: comparable here
            start, seconds, status = line.split()
            self.results.append((float(start), float(seconds), int(status)))

    def since(self, start: float) -> tuple[list[float], int]:
        rows = [(seconds, status) for t, seconds, status in self.results if t >= start]
        return [s for s, _ in rows], sum(1 for _, status in rows if status != 200)

    def stop(self) -> None:
        self.process.terminate()  # our own child, by its handle
        self.process.wait(timeout=15)


class Tally:
    """Outcomes and latencies of one scenario, filled by many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []  # answered requests (200), the mask checked
        self.refusal_latencies: list[float] = []  # 429 / 503: how promptly a busy server says so
        self.counts = {"ok": 0, "refused": 0, "mismatch": 0, "error": 0, "5xx": 0}
        self.samples: list[str] = []
        self.hostile: list[str] = []

    def add(self, outcome: str, seconds: float | None = None, note: str = "") -> None:
        with self.lock:
            self.counts[outcome] += 1
            if seconds is not None:
                (self.refusal_latencies if outcome == "refused" else self.latencies).append(seconds)
            if note and len(self.samples) < 5:
                self.samples.append(note)


def post_scan(http: httpx.Client, scan: tuple[str, bytes], model: str) -> httpx.Response:
    return http.post("/segment", files=[("files", (scan[0], scan[1], "application/octet-stream"))], data={"model": model})


def normal_client(
    url: str, scan: tuple[str, bytes], index: int, models: list[str], rounds: int, reference: dict, tally: Tally
) -> None:
    with httpx.Client(base_url=url, timeout=600) as http:
        for round_number in range(rounds):
            for offset in range(len(models)):
                model = models[(index + round_number + offset) % len(models)]
                for _attempt in range(20):
                    start = time.monotonic()
                    try:
                        response = post_scan(http, scan, model)
                    except httpx.HTTPError as error:
                        tally.add("error", note=f"client {index} {model}: {type(error).__name__}")
                        break
                    seconds = time.monotonic() - start
                    if response.status_code in (429, 503):
                        tally.add("refused", seconds)
                        time.sleep(min(float(response.headers.get("Retry-After", 1)), 2.0))
                        continue
                    if response.status_code >= 500:
                        tally.add("5xx", note=f"client {index} {model}: {response.status_code} {response.text[:120]}")
                    elif response.status_code != 200:
                        tally.add("error", note=f"client {index} {model}: {response.status_code} {response.text[:120]}")
                    elif answer_key(response.json()) != reference[index, model]:
                        tally.add("mismatch", seconds, note=f"client {index} {model} round {round_number}")
                    else:
                        tally.add("ok", seconds)
                    break


def hostile_upload(url: str, label: str, path: Path, tally: Tally) -> None:
    """Post ``path`` as an attacker would: again after each 429 (Retry-After, at most 2 s) until it gets in."""
    data = path.read_bytes()
    refusals = 0
    with httpx.Client(base_url=url, timeout=600) as http:
        start = time.monotonic()
        for _attempt in range(200):
            try:
                response = post_scan(http, (path.name, data), "unet.figshare")
            except httpx.HTTPError as error:
                outcome = type(error).__name__
                break
            outcome = f"{response.status_code}"
            if response.status_code >= 500 and response.status_code != 503:
                tally.add("5xx", note=f"{label}: {response.status_code} {response.text[:120]}")
            if response.status_code != 429:
                break
            refusals += 1
            time.sleep(min(float(response.headers.get("Retry-After", 1)), 2.0))
        detail = response.text[:70] if outcome.isdigit() and outcome != "200" else ""
        with tally.lock:
            tally.hostile.append(f"{label} {outcome} after {refusals} x 429, {time.monotonic() - start:.1f}s {detail}")


def chunked_body(url: str, total: int, tally: Tally) -> None:
    """A chunked multipart body of ``total`` bytes, sent until the server answers (see tests/test_api_limits)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from test_api_limits import send_chunked_until_answered

    start = time.monotonic()
    sent, answer = send_chunked_until_answered(url, total)
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/") else "no answer"
    tally.hostile.append(f"{total // MIB} MiB chunked -> {status} after {sent / MIB:.0f} MiB, {time.monotonic() - start:.1f}s")


def repeat(times: int, job: Callable[[], None]) -> None:
    for _ in range(times):
        job()


def run_scenario(
    name: str, server: Server, probe: HealthProbe, jobs: list[Callable[[], None]], report: list[dict[str, Any]], tally: Tally
) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name} ...", file=sys.stderr, flush=True)
    start = time.monotonic()
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - start
    time.sleep(2.0)  # settle: what the server keeps once the burst is over
    health, health_failures = probe.since(start)
    answered = tally.latencies
    report.append(
        {
            "scenario": name,
            "requests": sum(tally.counts.values()),
            **tally.counts,
            "wall_s": round(wall, 1),
            "req_per_s": round(tally.counts["ok"] / wall, 2) if wall else None,
            "p50_s": round(percentile(answered, 50), 3),
            "p95_s": round(percentile(answered, 95), 3),
            "refused_p95_ms": round(1000 * percentile(tally.refusal_latencies, 95), 1),
            "health_p50_ms": round(1000 * percentile(health, 50), 1),
            "health_p95_ms": round(1000 * percentile(health, 95), 1),
            "health_max_ms": round(1000 * max(health, default=float("nan")), 1),
            "health_failures": health_failures,
            "peak_rss_mib": round(server.peak_since(start) / MIB),
            "rss_after_mib": round(server.rss() / MIB),
            "hostile": tally.hostile,
            "samples": tally.samples,
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent normal clients, each with its own scan")
    parser.add_argument("--scans", type=int, default=8, help="different scans (the references run sequentially)")
    parser.add_argument("--rounds", type=int, default=1, help="requests per client and model")
    parser.add_argument("--bombs", type=int, default=4, help="concurrent 1000 MiB ZIP bombs during the client load")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads in the server")
    parser.add_argument("--repo", type=Path, default=HERE.parent, help="checkout whose API is served")
    parser.add_argument("--bomb-folder", type=Path, default=Path(tempfile.gettempdir()) / "brainseg-abuse-bombs")
    parser.add_argument("--bomb", default="zip DICM", choices=sorted(HOSTILE[:-1]), help="the bomb of scenario 3")
    parser.add_argument("--bomb-rounds", type=int, default=2, help="times each bomb thread posts its bomb")
    parser.add_argument(
        "--alone", default=",".join(HOSTILE), help=f"comma-separated hostile uploads for scenario 4, of: {', '.join(HOSTILE)}"
    )
    parser.add_argument("--max-server-rss-mb", type=int, default=12_000, help="stop the server past this (a shared machine)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    # A SIGTERM (e.g. from `timeout`) unwinds through the finally below, which stops the server child.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    bombs = build_bombs(args.bomb_folder)
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="brainseg-abuse-") as tmp:
        weights = Path(tmp) / "weights"
        weights.mkdir()
        everything = build_weights(weights)
        spiking = [m for m in everything if "snn" in m][:1]
        models = ["unet.figshare", *spiking]
        for model_id in everything:
            if model_id not in models:
                (weights / model_id).unlink()
        scans = session_scans(min(args.scans, args.clients))
        server = Server(args.repo.resolve(), weights, args.threads, args.max_server_rss_mb * MIB)
        probe = HealthProbe(server.url)
        try:
            reference: dict[tuple[int, str], Any] = {}
            tally = Tally()

            def sequential() -> None:
                with httpx.Client(base_url=server.url, timeout=600) as http:
                    for index, scan in enumerate(scans):
                        for model in models:
                            start = time.monotonic()
                            response = post_scan(http, scan, model)
                            response.raise_for_status()
                            reference[index, model] = answer_key(response.json())
                            tally.add("ok", time.monotonic() - start)

            run_scenario("sequential", server, probe, [sequential], report, tally)

            def clients(tally: Tally) -> list[Callable[[], None]]:
                return [
                    partial(
                        normal_client, server.url, scans[i % len(scans)], i % len(scans), models, args.rounds, reference, tally
                    )
                    for i in range(args.clients)
                ]

            tally = Tally()
            run_scenario(f"{args.clients} clients", server, probe, clients(tally), report, tally)
            tally = Tally()
            bombing = partial(hostile_upload, server.url, args.bomb, bombs[args.bomb], tally)
            bomb_jobs = [partial(repeat, args.bomb_rounds, bombing)] * args.bombs
            name = f"{args.clients} clients + {args.bombs} {args.bomb}"
            run_scenario(name, server, probe, clients(tally) + bomb_jobs, report, tally)
            for label in filter(None, args.alone.split(",")):
                if server.process.poll() is not None:
                    break
                tally = Tally()
                if label == CHUNKED:
                    job = partial(chunked_body, server.url, 600 * MIB, tally)
                else:
                    job = partial(hostile_upload, server.url, label, bombs[label], tally)
                run_scenario(label, server, probe, [job], report, tally)
        finally:
            probe.stop()
            server.close()

    if args.json:
        print(json.dumps(report, indent=2))
    else:
        load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
        print(f"API from {args.repo} ({os.cpu_count()} CPUs, load average at the end {load}), models {', '.join(models)}")
        if server.killed_at:
            print(f"! the server was stopped at {server.killed_at // MIB} MiB RSS (--max-server-rss-mb)")
        header = (
            f"{'scenario':<28} {'req':>4} {'ok':>4} {'429/503':>7} {'err':>3} {'5xx':>3} {'mism':>4} {'req/s':>6} "
            f"{'p50 s':>6} {'p95 s':>6} {'429 p95 ms':>10} {'health p50/p95/max ms':>22} {'peak RSS':>9} {'RSS after':>9}"
        )
        print(header)
        for row in report:
            health = f"{row['health_p50_ms']:.0f}/{row['health_p95_ms']:.0f}/{row['health_max_ms']:.0f}"
            print(
                f"{row['scenario']:<28} {row['requests']:>4} {row['ok']:>4} {row['refused']:>7} {row['error']:>3} "
                f"{row['5xx']:>3} {row['mismatch']:>4} {row['req_per_s'] or 0:>6.2f} {row['p50_s']:>6.2f} {row['p95_s']:>6.2f} {row['refused_p95_ms']:>10.0f} "
                f"{health:>22} {row['peak_rss_mib']:>6} MiB {row['rss_after_mib']:>5} MiB"
            )
            for line in row["hostile"] + row["samples"]:
                print(f"    {line}")
    bad = sum(row["error"] + row["5xx"] + row["mismatch"] + row["health_failures"] for row in report)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
