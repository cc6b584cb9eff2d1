"""One 2-thread training run against two 1-thread runs side by side: which uses 2 cores better?

    python benchmarks/train_threads.py [--arch unet] [--steps 30] [--size 128] [--batch-size 16]

Each run does ``--steps`` optimiser steps (DiceCE, AdamW) of the architecture's lite preset on random
batches, after 3 warm-up steps. It prints steps per second of each layout and the throughput ratio
(both 1-thread runs together against the 2-thread run), the figure the training queue's
``--workers`` default rests on. bfloat16 autocast is used where the CPU computes it natively, as
the queue does.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_steps(arch: str, steps: int, size: int, batch_size: int, threads: int) -> float:
    """Steps per second of ``steps`` training steps with ``threads`` threads."""
    import torch
    from monai.losses import DiceCELoss

    from seg_core.inference import fast_bfloat16
    from seg_core.models import create_model, get_spec

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    spec = get_spec(arch)
    model = create_model(arch, **{**spec.lite_config, "in_channels": 1})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_function = DiceCELoss(sigmoid=True)
    bf16 = fast_bfloat16(torch.device("cpu"))
    images = torch.randn(batch_size, 1, size, size)
    masks = (torch.rand(batch_size, 1, size, size) > 0.9).float()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(images)
        loss = loss_function(logits.float(), masks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="unet")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_steps(args.arch, args.steps, args.size, args.batch_size, args.worker)))
        return
    base = [sys.executable, __file__, "--arch", args.arch, "--steps", str(args.steps), "--size", str(args.size)]
    base += ["--batch-size", str(args.batch_size)]
    two_threads = float(subprocess.run([*base, "--worker", "2"], capture_output=True, text=True, check=True).stdout)
    pair = [subprocess.Popen([*base, "--worker", "1"], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    one_thread = [float(process.communicate()[0]) for process in pair]
    print(f"{args.arch} lite, {args.size} px, batch {args.batch_size}, {args.steps} steps per run")
    print(f"{'layout':<28}{'steps/s per run':>18}{'steps/s in all':>16}")
    print(f"{'one run, 2 threads':<28}{two_threads:>18.3f}{two_threads:>16.3f}")
    print(f"{'two runs, 1 thread each':<28}{' / '.join(f'{v:.3f}' for v in one_thread):>18}{sum(one_thread):>16.3f}")
    print(f"two 1-thread runs / one 2-thread run: {sum(one_thread) / two_threads:.2f}x")


if __name__ == "__main__":
    main()
