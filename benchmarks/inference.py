"""Inference speed and memory of a shipped model on CPU: one 256x256 slice and one 240x240x155 volume.

Run: ``python benchmarks/inference.py [--model unet.figshare] [--repeats 7] [--threads 2]``.
Prints the median wall time and the peak resident memory of each case. Targets on a 2-core machine
(issue 2): a slice within 100 ms, a volume within 10 s. The inputs are synthetic head-like phantoms
(the timing does not depend on the content, except that empty slices are skipped, so every slice of
the volume phantom holds tissue).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seg_core.inference import Segmenter  # noqa: E402
from seg_core.scans import UNSPECIFIED, Scan  # noqa: E402


def phantom(depth: int, size: int, seed: int = 0) -> Scan:
    """An ellipsoidal 'head' with a bright blob, ``(1, D, size, size)``; every slice is non-empty."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(np.linspace(-1, 1, depth), np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    head = ((y / 0.85) ** 2 + (x / 0.7) ** 2 + (z / 1.3) ** 2) < 1
    blob = ((y - 0.2) ** 2 + (x + 0.25) ** 2 + z**2) < 0.05
    array = (head * (100 + 20 * rng.standard_normal(head.shape)) + blob * 80).astype(np.float32)
    return Scan(array=array[None], modalities=(UNSPECIFIED,), spacing=(1.0, 1.0, 1.0), name="phantom", is_2d=depth == 1)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_case(segmenter: Segmenter, scan: Scan, repeats: int) -> list[float]:
    segmenter(scan)  # warm-up: first call allocates and picks kernels
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        segmenter(scan)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet.figshare")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--precision",
        choices=("auto", "float32", "bfloat16"),
        default="auto",
        help="auto: as the weights' config and the CPU allow",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    segmenter = Segmenter.from_pretrained(args.model, bfloat16=None if args.precision == "auto" else args.precision == "bfloat16")
    rows = []
    for label, scan, target in [("slice 256x256", phantom(1, 256), 0.100), ("volume 240x240x155", phantom(155, 240), 10.0)]:
        times = time_case(segmenter, scan, args.repeats if scan.num_slices == 1 else max(3, args.repeats // 2))
        rows.append((label, statistics.median(times), min(times), target, peak_rss_mb()))
    precision = "bfloat16 autocast" if segmenter.bfloat16 else "float32"
    print(
        f"model {args.model}, input size {segmenter.input_size}, {precision}, flip TTA {segmenter.flip_tta}, "
        f"{args.threads} threads, torch {torch.__version__}"
    )
    print(f"{'case':<22}{'median s':>10}{'min s':>10}{'target s':>10}{'met':>6}{'peak RSS MB':>13}")
    for label, median, fastest, target, rss in rows:
        print(f"{label:<22}{median:>10.3f}{fastest:>10.3f}{target:>10.3f}{'yes' if median <= target else 'no':>6}{rss:>13.0f}")


if __name__ == "__main__":
    main()
