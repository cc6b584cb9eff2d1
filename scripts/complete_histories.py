"""Complete the training history of weights trained before the record kept every epoch (b7790dc).

Until then ``metrics.json`` held the history only up to the best (exported) epoch. The run's
checkpoint (``cache/zoo/<dataset>/runs/<id>/checkpoint.pt``) holds every epoch's row; this copies
it in where it extends the recorded rows and has as many rows as the run's ``epochs_run``.

    python scripts/complete_histories.py            # what it would do
    python scripts/complete_histories.py --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seg_core.weights import WEIGHTS_DIR, record_metrics  # noqa: E402


def main(write: bool) -> None:
    for folder in sorted(path for path in WEIGHTS_DIR.iterdir() if (path / "metrics.json").is_file()):
        dataset = folder.name.partition(".")[2]
        checkpoint = ROOT / "cache" / "zoo" / dataset / "runs" / folder.name / "checkpoint.pt"
        if not checkpoint.is_file():
            continue
        training = json.loads((folder / "metrics.json").read_text()).get("training", {})
        full = json.loads(torch.load(checkpoint, weights_only=True, map_location="cpu")["history_json"])
        recorded = training.get("history", [])
        same_run = full[: len(recorded)] == recorded and len(full) == training.get("epochs_run")
        action = "completed" if same_run and len(full) > len(recorded) else "left"
        print(f"{folder.name:28} recorded {len(recorded):3} rows, checkpoint {len(full):3}, same run {same_run}: {action}")
        if write and action == "completed":
            record_metrics(folder, "training", {"history": full}, merge=True)


if __name__ == "__main__":
    main("--write" in sys.argv)
