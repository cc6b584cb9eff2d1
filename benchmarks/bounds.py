"""Seconds the safety paths take, against the wall-clock bounds the tests used to assert.

Run: ``python benchmarks/bounds.py [--repeats 5] [--threads 2]``.

The tests assert what these paths do (a clear error, a bounded memory peak, nothing written); how
fast they do it depends on the machine and its load, so it is measured here instead, as the median
of ``--repeats`` runs after one warm-up, next to the bound each used to be held to:

* HD95 of a 256x256 slice pair with scattered false positives (was ``tests/test_metrics.py``, 0.1 s):
  MONAI measures boundary distances with a KD-tree, milliseconds rather than a dense search;
* a gzip NIfTI followed by 64 MiB of zeros (was ``tests/test_scans.py``, 2 s): the reader stops
  decompressing once the header's voxels are read;
* every file of the malformed corpus ``tests/malformed.py``, as bytes and as a path (was
  ``tests/test_hardening.py``, 5 s a read), and the bad inputs of ``tests/test_scans.py`` (3 s
  each); the slowest one is named;
* an unreachable Hub endpoint, until the clear error (was ``tests/test_hub.py``, 60 s).
"""

from __future__ import annotations

import argparse
import gzip
import logging
import socket
import statistics
import sys
import tempfile
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: imports and first calls
    return statistics.median(timeit.repeat(run, number=1, repeat=repeats))


def raises(run: Callable[[], object], error: type[Exception]) -> Callable[[], None]:
    """``run`` that must raise ``error`` (a run that does not is a failure of the benchmark, not a time)."""

    def expect() -> None:
        try:
            run()
        except error:
            return
        raise AssertionError(f"{run} did not raise {error.__name__}")

    return expect


def hd95_case() -> Callable[[], object]:
    from seg_core.metrics import segmentation_metrics

    rng = np.random.default_rng(1)
    truth, pred = np.zeros((256, 256), np.uint8), np.zeros((256, 256), np.uint8)
    truth[40:160, 50:170] = 1
    pred[45:170, 48:160] = 1
    pred[rng.integers(0, 256, 30), rng.integers(0, 256, 30)] = 1  # scattered false positives
    return lambda: segmentation_metrics(pred, truth, spacing=(0.5, 0.5))


def gzip_padding_case() -> Callable[[], object]:
    import nibabel as nib

    from seg_core.scans import load_scan

    raw = nib.Nifti1Image(np.ones((16, 16, 2), np.uint8), np.eye(4)).to_bytes()
    padded = gzip.compress(raw + b"\x00" * (64 * 1024 * 1024), compresslevel=1)
    return lambda: load_scan(padded, name="padded.nii.gz")


def corpus_cases(folder: Path) -> list[tuple[str, Callable[[], object]]]:
    """Each file of ``tests/malformed.py``, read from its bytes and from its path."""
    from malformed import write_corpus

    from seg_core.scans import ScanError, load_scan

    cases = []
    for entry, path in write_corpus(folder):
        for label, source, kwargs in ((" (bytes)", path.read_bytes(), {"name": entry.filename}), (" (path)", path, {})):
            run = lambda source=source, kwargs=kwargs: load_scan(source, **kwargs)  # noqa: E731
            cases.append((entry.filename + label, run if entry.loads else raises(run, ScanError)))
    return cases


def bad_input_cases() -> list[tuple[str, Callable[[], object]]]:
    """The bad inputs of ``tests/test_scans.py`` (none where that module no longer has them)."""
    try:
        from test_scans import BAD_INPUTS
    except ImportError:
        return []
    from seg_core.scans import ScanError, load_scan

    return [
        (key, raises(lambda data=data, name=name: load_scan(data, name=name), ScanError))
        for key, (data, name, _) in BAD_INPUTS.items()
    ]


def slowest(cases: list[tuple[str, Callable[[], object]]], repeats: int) -> tuple[str, float]:
    return max(((name, median_seconds(run, repeats)) for name, run in cases), key=lambda row: row[1], default=("none", 0.0))


def unreachable_hub_case(cache: Path) -> Callable[[], object]:
    from seg_core.weights import WeightsError, load_model

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return raises(
        lambda: load_model("hub:brainseg/unet-tiny@main", endpoint=f"http://127.0.0.1:{port}", cache_dir=cache),
        WeightsError,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    # The Hub case warns on every run (unpinned revision, no answer); the table is the output.
    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("HD95 256x256", "", median_seconds(hd95_case(), args.repeats), 0.1))
        rows.append(("gzip NIfTI + 64 MiB zeros", "", median_seconds(gzip_padding_case(), args.repeats), 2.0))
        corpus, bad = corpus_cases(Path(tmp) / "corpus"), bad_input_cases()
        rows.append((f"malformed corpus ({len(corpus)} reads)", *slowest(corpus, args.repeats), 5.0))
        rows.append((f"test_scans bad inputs ({len(bad)})", *slowest(bad, args.repeats), 3.0))
        hub = unreachable_hub_case(Path(tmp) / "hub-cache")
        rows.append(("unreachable Hub", "", median_seconds(hub, max(1, args.repeats // 2)), 60.0))
    print(f"{args.threads} threads, median of {args.repeats} runs, torch {torch.__version__}")
    print(f"{'case':<32}{'slowest':<36}{'median s':>10}{'bound s':>10}{'met':>6}")
    for label, detail, median, bound in rows:
        print(f"{label:<32}{detail:<36}{median:>10.3f}{bound:>10.1f}{'yes' if median <= bound else 'no':>6}")


if __name__ == "__main__":
    main()
