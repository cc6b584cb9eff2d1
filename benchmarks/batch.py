"""Cohort throughput: the sequential loop, local worker processes and local Ray Data, on the same cases.

    python benchmarks/batch.py                                   # BraTS 2015 + LGG kaggle_3m, unet.brats + unet.lgg
    python benchmarks/batch.py --repeats 1 --modes sequential,workers
    python benchmarks/batch.py --inputs DIR [DIR ...] --model unet.figshare
    python benchmarks/batch.py --inputs ../shared/data/lgg/kaggle_3m_128 --model unet.lgg --cases 40   # cohort size

Each repeat runs every mode once, in turn (so a load on the machine falls on all of them alike), into
a fresh output folder: no resume. Wall time includes everything a user waits for: starting the
workers (processes or Ray), loading the models, reading, segmenting, writing masks and the report.
The table gives the median over repeats, cases (scans) and (case, model) pairs per minute, and the
ratio to the sequential loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from seg_core.batch import find_cases, run_cohort  # noqa: E402
from seg_core.batch.runner import available_cores  # noqa: E402

DATA_ROOT = Path(os.environ.get("BRAINSEG_DATA_ROOT", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))


def first_cases(inputs: list[str], count: int, folder: Path) -> list[str]:
    """The first ``count`` cases of ``inputs`` as a cohort CSV in ``folder`` (the cohort-size sweep)."""
    table = folder / f"first-{count}.csv"
    rows = ["path,case"] + [f"{case.paths[0]},{case.name}" for case in find_cases(inputs)[:count]]
    table.write_text("\n".join(rows) + "\n")
    return [str(table)]


def run_mode(mode: str, inputs: list[str], models: list[str], workers: int) -> tuple[float, int, int]:
    """(wall seconds, rows, error rows) of one run of ``mode`` into a fresh folder."""
    with tempfile.TemporaryDirectory(prefix=f"batch-{mode}-") as out:
        start = time.perf_counter()
        if mode == "sequential":
            run = run_cohort(inputs, models, out, workers=1, progress=False)
        elif mode == "workers":
            run = run_cohort(inputs, models, out, workers=workers, progress=False)
        elif mode == "ray":
            run = run_cohort(inputs, models, out, workers=workers, ray="local", progress=False)
        else:
            raise ValueError(f"unknown mode {mode!r}; choose sequential, workers or ray")
        return time.perf_counter() - start, len(run.rows), len(run.errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", nargs="+", default=[str(DATA_ROOT / "brats2015"), str(DATA_ROOT / "lgg" / "kaggle_3m")])
    parser.add_argument("--model", action="append", default=None, help="default: unet.brats and unet.lgg")
    parser.add_argument("--modes", default="sequential,workers,ray")
    parser.add_argument("--workers", type=int, default=available_cores(), help="processes / Ray actors (default: cores)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", type=int, default=0, help="only the first N cases of the inputs (0: all)")
    args = parser.parse_args()
    models = args.model or ["unet.brats", "unet.lgg"]
    modes = [m for m in args.modes.split(",") if m]
    if args.cases:
        args.inputs = first_cases(args.inputs, args.cases, Path(tempfile.mkdtemp(prefix="batch-cases-")))
    cases = len(find_cases(args.inputs))
    print(f"{cases} cases x {len(models)} models ({', '.join(models)}) from {', '.join(args.inputs)}")
    print(
        f"{available_cores()} cores; {args.workers} workers / actors; {args.repeats} repeats; load average {os.getloadavg()[0]:.2f}"
    )
    walls: dict[str, list[float]] = {mode: [] for mode in modes}
    pairs = errors = 0
    for repeat in range(args.repeats):
        for mode in modes:
            wall, pairs, errors = run_mode(mode, args.inputs, models, args.workers)
            walls[mode].append(wall)
            print(f"  repeat {repeat + 1} {mode:<10} {wall:7.1f} s", flush=True)
    baseline = statistics.median(walls[modes[0]])
    print()
    print(f"| mode | workers | median wall (s) | range (s) | cases / min | pairs / min | speed-up vs {modes[0]} |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        median = statistics.median(walls[mode])
        used = 1 if mode == "sequential" else args.workers
        print(
            f"| {mode} | {used} | {median:.1f} | {min(walls[mode]):.1f}-{max(walls[mode]):.1f} | {cases * 60 / median:.1f} | "
            f"{pairs * 60 / median:.1f} | {baseline / median:.2f}x |"
        )
    print(f"\n{pairs} (case, model) pairs a run, {errors} of them error rows (a model needing a sequence the scan lacks).")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
