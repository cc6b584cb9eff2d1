"""Peak memory and time of decompression bombs through ``load_scan``: the figures of issue 19.

Run: ``python benchmarks/decode_bombs.py [--repeats 1] [--budget-mb N] [--folder DIR]``.

Each bomb is read by ``seg_core.scans.load_scan`` in a fresh child process, so its peak resident
memory (``ru_maxrss``) is its own; the table prints that peak, its rise over the child's baseline
after imports, the median seconds over ``--repeats`` runs, and how the read ended (the first words of
the error). The bombs, built once into ``--folder`` (default: a temporary folder) by streaming, so
the builder never holds one expanded:

* ``zip zeros``: a ZIP (~1 MB) whose member ``case/slice.dcm`` is 1000 MiB of zeros (under the
  1 GiB unpack cap);
* ``zip DICM``: the same, but the member starts like a DICOM file (128 bytes, ``DICM``, the File
  Meta group's first tag), so no sniff of its first bytes can refuse it: only the byte budget bounds it;
* ``gzip DICM``: a ``.dcm.gz`` (~1 MB) of the same 1000 MiB;
* ``nii.gz 4096^2x4``: a 260 KB ``.nii.gz`` of 4096x4096x4 float32 zeros (64 Mi voxels, at the
  voxel limit: a valid volume, which loads);
* ``4 x zip DICM``: four threads of one process each reading the ``zip DICM`` bomb at once;
* ``DICOM series 200x512^2``: no bomb, a legitimate heavy upload (a ZIP of 200 MR slices of
  512x512 int16, 100 MiB), to see what the readers' transient buffers cost.

``--data-root DIR`` adds what real cases (a BraTS 2018 and 2015 case, an LGG stack, a Figshare
slice) reserve of the decode budget at their peak, read in this process with the current tree.
``BRAINSEG_DECODE_BUDGET_MB`` (``--budget-mb``) sets the process-wide decode budget of the children;
``--code DIR`` measures another seg_core tree (e.g. ``git archive <commit> seg_core | tar -x -C DIR``), so
before and after print side by side; a child past ``--timeout`` is stopped and its peak so far shown.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
BOMB_MIB = 1000
#: Preamble, signature and the start of the File Meta group: no sniff of the first bytes can refuse it.
DICM_HEAD = b"\x00" * 128 + b"DICM\x02\x00"


def _zeros(total: int, head: bytes = b"") -> list[bytes]:
    """``total`` bytes (``head`` then zeros) as 16 MiB pieces, so no expanded copy is ever held."""
    pieces, left = [head], total - len(head)
    while left > 0:
        pieces.append(bytes(min(left, 16 * MIB)))
        left -= len(pieces[-1])
    return pieces


def _write_zip(path: Path, head: bytes) -> None:
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("case/slice.dcm", "w", force_zip64=True) as member,
    ):
        for piece in _zeros(BOMB_MIB * MIB, head):
            member.write(piece)


def _write_gzip(path: Path, head: bytes) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as stream:
        for piece in _zeros(BOMB_MIB * MIB, head):
            stream.write(piece)


def _write_nifti_zeros(path: Path) -> None:
    import nibabel as nib
    import numpy as np

    header = nib.Nifti1Header()
    header.set_data_shape((4096, 4096, 4))
    header.set_data_dtype(np.float32)
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=1)
    header.set_data_offset(352)
    prefix = header.binaryblock + b"\x00" * 4  # no extensions; data at byte 352
    header_bytes = prefix + b"\x00" * (int(header["vox_offset"]) - len(prefix))
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as stream:
        stream.write(header_bytes)
        for piece in _zeros(4096 * 4096 * 4 * 4):
            stream.write(piece)


def _write_dicom_series(path: Path, slices: int = 200, size: int = 512) -> None:
    """A legitimate heavy input: a ZIP (stored) of ``slices`` MR files of ``size``^2 int16 (100 MiB)."""
    import numpy as np

    sys.path.insert(0, str(REPO / "tests"))
    from malformed import mr_dicom

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(slices):
            pixels = rng.integers(0, 1000, (size, size), dtype=np.int16)
            data = mr_dicom(
                pixels,
                SeriesInstanceUID="1.2.826.0.1.3680043.8.498.19",
                InstanceNumber=index + 1,
                ImagePositionPatient=[0.0, 0.0, float(index)],
                ImageOrientationPatient=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                PixelSpacing=[0.5, 0.5],
            )
            archive.writestr(f"series/{index:04d}.dcm", data)


BOMBS = {
    "zip zeros": ("zip_zeros.zip", lambda p: _write_zip(p, b"")),
    "zip DICM": ("zip_dicm.zip", lambda p: _write_zip(p, DICM_HEAD)),
    "gzip DICM": ("bomb.dcm.gz", lambda p: _write_gzip(p, DICM_HEAD)),
    "nii.gz 4096^2x4": ("zeros_4096x4096x4.nii.gz", _write_nifti_zeros),
    "DICOM series 200x512^2": ("dicom_series_200x512x512.zip", _write_dicom_series),
}


def build(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, (filename, write) in BOMBS.items():
        path = folder / filename
        if not path.exists():
            write(path)
        paths[label] = path
    return paths


def child(paths: list[str]) -> None:
    """Read each path in its own thread at once; print one JSON line: peak RSS, seconds, outcomes."""
    import resource
    import threading
    import time

    from seg_core.scans import load_scan

    try:
        from seg_core.scans import budget as decode_budget
    except ImportError:  # before the budget existed
        decode_budget = None
    base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes: list[str] = [""] * len(paths)

    def read(index: int, path: str) -> None:
        try:
            scan = load_scan(Path(path).read_bytes(), name=Path(path).name)
            outcomes[index] = f"loaded {tuple(scan.array.shape)}"
        except Exception as exc:  # noqa: BLE001 - the table reports how every read ended
            outcomes[index] = f"{type(exc).__name__}: {str(exc)[:90]}"

    start = time.perf_counter()
    threads = [threading.Thread(target=read, args=(i, p)) for i, p in enumerate(paths)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    budget_mib = None
    if decode_budget is not None:
        shared = decode_budget.decode_budget()
        budget_mib = shared.capacity / MIB
        assert shared.reserved == 0, f"{shared.reserved} bytes still reserved"
    print(
        json.dumps(
            {
                "base_mib": base_kib / 1024,
                "peak_mib": peak_kib / 1024,
                "seconds": seconds,
                "outcomes": outcomes,
                "budget_mib": budget_mib,
            }
        )
    )


def _peak_rss_mib(pid: int) -> float | None:
    """VmHWM (peak resident set) of a running process, from /proc (Linux)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def run_child(paths: list[Path], env: dict[str, str], timeout_s: float) -> dict:
    """One child reading ``paths`` at once; one that runs past ``timeout_s`` is stopped, its peak kept."""
    import time

    child_process = subprocess.Popen(
        [sys.executable, __file__, "--child", *map(str, paths)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    start, peak = time.monotonic(), 0.0
    while child_process.poll() is None:
        peak = max(peak, _peak_rss_mib(child_process.pid) or 0.0)
        if time.monotonic() - start > timeout_s:
            child_process.kill()
            child_process.wait()
            return {
                "base_mib": 0.0,
                "peak_mib": peak,
                "seconds": timeout_s,
                "outcomes": [f"stopped after {timeout_s:.0f} s"],
                "budget_mib": None,
                "stopped": True,
            }
        time.sleep(0.1)
    stdout, stderr = child_process.communicate()
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if child_process.returncode != 0 or not lines:
        raise SystemExit(f"child failed ({child_process.returncode}): {stderr[-2000:]}")
    return json.loads(lines[-1])


def case_reservations(data_root: Path) -> None:
    """What real cases reserve of the decode budget at their peak (the default budget's headroom)."""
    from seg_core.scans import load_scan, set_decode_budget

    candidates = [
        next((p for p in sorted((data_root / "brats2018").glob("*")) if p.is_dir()), None),
        next((p for p in sorted((data_root / "brats2015").glob("*")) if p.is_dir()), None),
        next((p for p in sorted((data_root / "lgg" / "kaggle_3m").glob("*")) if p.is_dir()), None),
        next(iter(sorted((data_root / "figshare" / "images").glob("*.png"))), None),
    ]
    print("\n| real case | array shape | array MiB | peak reserved MiB |")
    print("|---|---|---|---|")
    for case in (c for c in candidates if c is not None):
        roomy = set_decode_budget(8 * 1024 * MIB, wait_s=0.0)
        scan = load_scan(case)
        shape = tuple(scan.array.shape)
        print(f"| {case.relative_to(data_root)} | {shape} | {scan.array.nbytes / MIB:.0f} | {roomy.peak / MIB:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--budget-mb", type=int, default=None, help="BRAINSEG_DECODE_BUDGET_MB for the children")
    parser.add_argument("--folder", type=Path, default=None, help="where to build the bombs (kept for reuse)")
    parser.add_argument("--only", nargs="*", default=None, help="labels of the rows to run")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before a child is stopped")
    parser.add_argument(
        "--code", type=Path, nargs="+", default=[REPO], help="seg_core trees to measure side by side (e.g. an older export)"
    )
    parser.add_argument("--data-root", type=Path, default=None, help="also print what real cases here reserve")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    envs = [dict(os.environ, PYTHONPATH=str(code.resolve())) for code in args.code]
    if args.budget_mb is not None:
        for env in envs:
            env["BRAINSEG_DECODE_BUDGET_MB"] = str(args.budget_mb)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="decode_bombs_"))
    paths = build(folder)
    rows = [(label, [path]) for label, path in paths.items()]
    rows.append(("4 x zip DICM", [paths["zip DICM"]] * 4))
    if args.only:
        rows = [r for r in rows if r[0] in args.only]
    print(
        f"bombs in {folder}; zlib {zlib.ZLIB_VERSION}; medians of {args.repeats} run(s); children stopped after {args.timeout:.0f} s"
    )
    for index, code in enumerate(args.code):
        print(f"tree {index}: {code}")
    columns = " | ".join(f"tree {i}: peak RSS MiB | rise MiB | s | budget MiB | outcome" for i in range(len(envs)))
    ratio = " | peak ratio (last / first)" if len(envs) > 1 else ""
    print(f"| bomb | file | {columns}{ratio} |")
    print("|---|---|" + "---|" * (5 * len(envs) + (1 if ratio else 0)))
    for label, files in rows:
        cells, peaks = [], []
        for env in envs:
            runs = [run_child(files, env, args.timeout) for _ in range(args.repeats)]
            peak = statistics.median(r["peak_mib"] for r in runs)
            rise = statistics.median(r["peak_mib"] - r["base_mib"] if not r.get("stopped") else float("nan") for r in runs)
            seconds = statistics.median(r["seconds"] for r in runs)
            outcomes = "; ".join(sorted(set(runs[-1]["outcomes"])))
            budget = runs[-1]["budget_mib"]
            budget_text = f"{budget:.0f}" if budget is not None else "none"
            cells.append(f"{peak:.0f} | {rise:.0f} | {seconds:.2f} | {budget_text} | {outcomes}")
            peaks.append(peak)
        size = sum(f.stat().st_size for f in files) / len(files) / 1024
        ratio_cell = f" | {peaks[-1] / peaks[0]:.2f}" if len(peaks) > 1 else ""
        print(f"| {label} | {size:.0f} KiB | {' | '.join(cells)}{ratio_cell} |", flush=True)
    if args.data_root is not None:
        sys.path.insert(0, str(REPO))
        case_reservations(args.data_root)


if __name__ == "__main__":
    main()
