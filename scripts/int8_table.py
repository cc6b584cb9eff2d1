"""Print the README's table of int8 graphs: every shipped model's `quantize` record, kept or refused.

``python scripts/int8_table.py`` reads ``weights/*/metrics.json`` (``quantization``, written by
``python -m seg_core quantize``), so the table says only what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"


def main() -> None:
    print("| weights | validation Dice fp32 | int8 | drop | ranges |")
    print("|---|---|---|---|---|")
    for metrics_path in sorted(WEIGHTS.glob("*/metrics.json")):
        record = json.loads(metrics_path.read_text()).get("quantization")
        if not record:
            continue
        model_id = metrics_path.parent.name
        per_patient = " (per patient)" if not model_id.endswith(".figshare") else ""
        print(
            f"| {model_id}{per_patient} | {record['val_dice_fp32']:.4f} | {record['val_dice_int8']:.4f} "
            f"| {record['drop']:+.4f} | {'kept' if record['accepted'] else 'refused'} |"
        )


if __name__ == "__main__":
    main()
