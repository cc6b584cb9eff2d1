"""Seconds from handing a file to the Segment page until its overlay is on screen, in a real browser.

Run: ``python benchmarks/browser.py [--repeats 3]``.

Runs the browser test ``tests/app/test_browser.py`` (Debian's chromium via Playwright against
``streamlit run app.py``) ``--repeats`` times; each run writes its figures to
``artifacts/browser/timings.json``, and the table gives their median and minimum next to the target
(1 s for a 256x256 PNG on a 2-core CPU). Needs ``/usr/bin/chromium``; the test skips without it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TIMINGS = REPO / "artifacts" / "browser" / "timings.json"
TARGETS_S = {"png_256_upload_to_overlay_s": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        TIMINGS.unlink(missing_ok=True)
        test = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/app/test_browser.py"]
        result = subprocess.run(test, cwd=REPO, capture_output=True, text=True)
        if result.returncode != 0 or not TIMINGS.is_file():
            sys.exit(f"the browser test did not pass:\n{result.stdout[-3000:]}")
        for key, seconds in json.loads(TIMINGS.read_text()).items():
            runs.setdefault(key, []).append(seconds)
    print(f"{'case':<40}{'median s':>10}{'min s':>10}{'target s':>10}{'met':>6}")
    for key, times in runs.items():
        median, target = statistics.median(times), TARGETS_S.get(key)
        met = "" if target is None else ("yes" if median <= target else "no")
        shown = "" if target is None else f"{target:.1f}"
        print(f"{key:<40}{median:>10.3f}{min(times):>10.3f}{shown:>10}{met:>6}")


if __name__ == "__main__":
    main()
