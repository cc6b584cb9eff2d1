"""How close the time estimate shown before an explanation comes to the time the explanation takes.

Run: ``python benchmarks/explain_estimate.py [--models unet.figshare csa_snn.figshare] [--methods ...]
[--repeats 3] [--data-root ../shared/data]``.

For each model: :func:`seg_core.explain.estimate_explanation` (the estimate the app shows before the
Explain button runs anything), then :func:`seg_core.explain.explain_slice` on the same real slice with
the same settings, ``--repeats`` times, alternating, in one process. Printed per model: the median
estimate, the median measured time, their ratio (estimate / measured; 1.0 is exact, above 1 is
pessimistic), the probe's own cost and the measured forward / forward+backward times per image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from seg_core.explain import METHODS, estimate_explanation, explain_slice  # noqa: E402
from seg_core.inference import Segmenter  # noqa: E402
from seg_core.scans import load_scan  # noqa: E402
from seg_core.weights import load_model  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet.figshare", "attention_unet.figshare", "csa_snn.figshare"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the app's share of a shared CPU)")
    parser.add_argument("--data-root", default=os.environ.get("BRAINSEG_DATA_ROOT", str(REPO.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scan = load_scan(Path(args.data_root) / "figshare" / "images" / "1.png")
    print(f"slice: figshare/images/1.png; methods: {', '.join(args.methods)}; torch threads: {args.threads}")
    header = "| model | estimate s (median) | measured s (median) | estimate / measured | probe s | forward ms | fwd+bwd ms |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for model_id in args.models:
        segmenter = Segmenter(load_model(model_id), backend="torch")
        estimates, measured, probes = [], [], []
        forward_ms = gradient_ms = 0.0
        for _ in range(args.repeats):
            estimate = estimate_explanation(segmenter, tuple(args.methods))
            estimates.append(estimate.seconds)
            probes.append(estimate.probe_seconds)
            forward_ms, gradient_ms = estimate.forward_ms, estimate.gradient_ms
            start = time.perf_counter()
            explain_slice(segmenter, scan, 0, tuple(args.methods))
            measured.append(time.perf_counter() - start)
        est, real = statistics.median(estimates), statistics.median(measured)
        print(
            f"| {model_id} | {est:.2f} | {real:.2f} | {est / real:.2f} | {statistics.median(probes):.2f} "
            f"| {forward_ms:.1f} | {gradient_ms:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
