"""The output folder of a cohort run: rows, resume, and writes that stay inside it.

Every finished (case, model) pair is appended at once to ``DIR/results.jsonl`` (the journal: one
JSON row a line, flushed and fsynced), so a run killed at any point loses at most the line it was
writing. ``DIR/results.csv`` (and ``results.parquet`` on request) are rebuilt from the journal and
replaced atomically. A rerun reads the journal and skips every pair whose row is ``ok`` with the
same input sha256 and model sha256; error rows are tried again.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The columns of results.csv, first ones first; metric columns follow in the order they appear.
LEADING_COLUMNS = (
    "case",
    "model",
    "status",
    "error",
    "kind",
    "tumor_volume_ml",
    "tumor_area_px",
    "dice",
    "iou",
    "hd95",
    "seconds",
    "backend",
    "mask",
    "input_sha256",
    "model_sha256",
)
JOURNAL_NAME = "results.jsonl"


class OutputPathError(ValueError):
    """A path to be written lies outside the run's output folder."""


def inside(out_dir: Path, relative: str | Path) -> Path:
    """``out_dir / relative``, refused when it resolves outside ``out_dir`` (``..``, absolute paths, links)."""
    root = Path(out_dir).resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise OutputPathError(f"refusing to write {relative!s}: it resolves outside the output folder {root}")
    return target


def write_atomic(out_dir: Path, relative: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``out_dir / relative`` through a temporary file and ``os.replace``.

    A reader (or a crash) never sees a half-written file: the name points at the old file or the
    whole new one.
    """
    target = inside(out_dir, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _clean(value: Any) -> Any:
    """A JSON-safe cell: numpy scalars to Python, nan/inf to None."""
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class ResultStore:
    """The rows of one output folder: the journal, what is done, and the tables.

    Args:
        out_dir: the run's folder (created).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.journal = inside(self.out_dir, JOURNAL_NAME)
        # key -> (attempt, rows): the latest attempt of each task only.
        self.rows: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        if self.journal.exists():
            text = self.journal.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                # A killed run's half-written last line: cut it, or the next row would be glued to it.
                with self.journal.open("r+b") as stream:
                    stream.truncate(len(text[: text.rfind("\n") + 1].encode("utf-8")))
            for line in text.splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a damaged line: its task runs again
                attempt, rows = self.rows.get(row["_key"], ("", []))
                if row["_attempt"] > attempt:  # a later attempt replaces an earlier one
                    self.rows[row["_key"]] = (row["_attempt"], [row])
                elif row["_attempt"] == attempt:  # a task's rows are journalled together
                    rows.append(row)

    def done(self, key: str, input_sha256: str | None, model_sha256: str) -> bool:
        """Whether the task ``key`` finished ``ok`` before, on the same input and model bytes."""
        _, rows = self.rows.get(key, ("", []))
        return (
            bool(rows)
            and input_sha256 is not None
            and all(r.get("status") == "ok" for r in rows)
            and rows[0].get("input_sha256") == input_sha256
            and rows[0].get("model_sha256") == model_sha256
        )

    def add(self, key: str, rows: Iterable[dict[str, Any]]) -> None:
        """Journal the rows of one finished task (replacing an earlier attempt's)."""
        from datetime import UTC, datetime

        attempt = datetime.now(UTC).isoformat(timespec="microseconds")
        rows = [{**{k: _clean(v) for k, v in row.items()}, "_key": key, "_attempt": attempt} for row in rows]
        self.rows[key] = (attempt, rows)
        with self.journal.open("a", encoding="utf-8") as stream:
            stream.write("".join(json.dumps(row, allow_nan=False) + "\n" for row in rows))
            stream.flush()
            os.fsync(stream.fileno())

    def table(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The rows of ``keys`` (default: every task), in that order, without the journal's fields."""
        order = list(keys) if keys is not None else sorted(self.rows)
        return [
            {k: v for k, v in row.items() if not k.startswith("_")} for key in order for row in self.rows.get(key, ("", []))[1]
        ]

    def write_tables(self, rows: list[dict[str, Any]], parquet: bool = False) -> list[Path]:
        """``results.csv`` (and ``results.parquet``), replaced atomically; the paths written."""
        import pandas as pd

        columns = [c for c in LEADING_COLUMNS if any(c in row for row in rows)]
        columns += [c for c in dict.fromkeys(k for row in rows for k in row) if c not in columns]
        # Nullable dtypes: a count column with gaps (error rows) stays integer, not float.
        frame = pd.DataFrame(rows, columns=columns).convert_dtypes()
        written = [write_atomic(self.out_dir, "results.csv", frame.to_csv(index=False).encode())]
        if parquet:
            try:
                import pyarrow  # noqa: F401  (pandas writes Parquet through it)
            except ImportError:
                raise ImportError("writing results.parquet needs pyarrow: pip install pyarrow") from None
            written.append(write_atomic(self.out_dir, "results.parquet", frame.to_parquet(index=False)))
        return written
