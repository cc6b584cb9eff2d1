"""``summary.md`` and ``summary.png`` of a cohort run: per model, the mean and spread of each figure."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from seg_core.batch.results import write_atomic

#: Figures summarised per model, with the label the table shows.
FIGURES = (
    ("dice", "Dice"),
    ("iou", "IoU"),
    ("hd95", "HD95 (mm, px for slices)"),
    ("tumor_volume_ml", "tumor volume (mL)"),
    ("tumor_area_px", "tumor area (px)"),
    ("seconds", "seconds"),
)


def _values(rows: list[dict[str, Any]], column: str) -> np.ndarray:
    values = [row.get(column) for row in rows if row.get("status") == "ok"]
    return np.array([float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))])


def model_summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: ``n_ok``, ``n_error``, backends, and for each figure ``mean``, ``std``, ``median``, ``q1``, ``q3``, ``n``."""
    summary: dict[str, dict[str, Any]] = {}
    for model in dict.fromkeys(row["model"] for row in rows):
        mine = [row for row in rows if row["model"] == model]
        entry: dict[str, Any] = {
            "n_ok": sum(row.get("status") == "ok" for row in mine),
            "n_error": sum(row.get("status") != "ok" for row in mine),
            "backends": sorted({str(row["backend"]) for row in mine if row.get("backend")}),
        }
        for column, _ in FIGURES:
            values = _values(mine, column)
            if values.size:
                q1, median, q3 = np.percentile(values, [25, 50, 75])
                entry[column] = {
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
                    "median": float(median),
                    "q1": float(q1),
                    "q3": float(q3),
                    "n": int(values.size),
                }
        summary[model] = entry
    return summary


def render_markdown(rows: list[dict[str, Any]], plot_name: str | None) -> str:
    """The text of ``summary.md``."""
    summary = model_summary(rows)
    cases = len({row["case"] for row in rows})
    lines = [
        "# Cohort summary",
        "",
        f"{cases} cases x {len(summary)} models = {len(rows)} rows (`results.csv`). "
        "Mean ± standard deviation (median, n) over the cases each model segmented; "
        "Dice, IoU and HD95 only where ground truth was found beside the scan.",
        "",
    ]
    header = ["model", "ok", "errors", "backend"] + [
        label for column, label in FIGURES if any(column in e for e in summary.values())
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model, entry in summary.items():
        cells = [f"`{model}`", str(entry["n_ok"]), str(entry["n_error"]), ", ".join(entry["backends"]) or "-"]
        for column, _ in FIGURES:
            if not any(column in e for e in summary.values()):
                continue
            figure = entry.get(column)
            cells.append(
                f"{figure['mean']:.3f} ± {figure['std']:.3f} (median {figure['median']:.3f}, n={figure['n']})" if figure else "-"
            )
        lines.append("| " + " | ".join(cells) + " |")
    errors = [row for row in rows if row.get("status") != "ok"]
    if errors:
        lines += ["", f"## Errors ({len(errors)})", "", "| case | model | error |", "|---|---|---|"]
        lines += [f"| {row['case']} | `{row['model']}` | {str(row.get('error', '')).replace('|', '/')} |" for row in errors]
    if plot_name:
        lines += ["", f"![per-case figures by model]({plot_name})"]
    return "\n".join(lines) + "\n"


def plot_png(rows: list[dict[str, Any]]) -> bytes | None:
    """Box and strip plot of each case's Dice per model (tumor size where no case has ground truth); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers and workers
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    models = list(dict.fromkeys(row["model"] for row in rows))
    column, label = next(
        (
            (c, lab)
            for c, lab in (FIGURES[0], FIGURES[3], FIGURES[4])
            if any(_values([r for r in rows if r["model"] == m], c).size for m in models)
        ),
        (None, None),
    )
    if column is None:
        return None
    data = [_values([r for r in rows if r["model"] == m], column) for m in models]
    figure, axes = plt.subplots(figsize=(max(4.0, 1.6 * len(models) + 2), 4.0), dpi=110)
    try:
        axes.boxplot([d if d.size else [np.nan] for d in data], showfliers=False)
        jitter = np.random.default_rng(0)  # fixed: the same rows draw the same picture
        for index, values in enumerate(data, start=1):
            axes.scatter(index + jitter.uniform(-0.12, 0.12, values.size), values, s=14, alpha=0.7, color="tab:blue")
        axes.set_xticks(range(1, len(models) + 1), models, rotation=15)
        axes.set_ylabel(label)
        axes.set_title(f"{label} per case")
        axes.grid(axis="y", alpha=0.3)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return buffer.getvalue()


def write_report(out_dir: Path, rows: list[dict[str, Any]]) -> list[Path]:
    """Write ``summary.png`` (when matplotlib is installed) and ``summary.md``; the paths written."""
    written = []
    png = plot_png(rows) if rows else None
    if png is not None:
        written.append(write_atomic(out_dir, "summary.png", png))
    written.append(write_atomic(out_dir, "summary.md", render_markdown(rows, "summary.png" if png else None).encode()))
    return written
