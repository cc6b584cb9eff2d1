"""``python -m seg_core batch``: every case of a cohort through every model, resumable, with a report.

Example:
    >>> from seg_core.batch import run_cohort
    >>> run = run_cohort(["../shared/data/brats2015"], ["unet.brats"], "/tmp/cohort")  # doctest: +SKIP
    >>> run.rows[0]["dice"], run.summary_path  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from seg_core.batch.cases import find_cases, input_sha256
from seg_core.batch.report import write_report
from seg_core.batch.results import ResultStore
from seg_core.batch.runner import Task, available_cores, run_tasks
from seg_core.batch.worker import CohortWorkerFactory, model_sha256

log = logging.getLogger(__name__)


@dataclass
class CohortRun:
    """What a cohort run did: its rows (every case and model, earlier runs' included) and its files."""

    rows: list[dict[str, Any]]
    ran: int
    skipped: int
    out_dir: Path
    files: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row.get("status") != "ok"]


def row_key(case: str, model: str) -> str:
    return f"{case}|{model}"


def run_cohort(
    inputs: Sequence[str | Path] | str | Path,
    models: Sequence[str],
    out_dir: str | Path,
    *,
    workers: int | None = None,
    ray: str | None = None,
    backend: str = "auto",
    weights_dir: str | Path | None = None,
    parquet: bool = False,
    progress: bool = True,
) -> CohortRun:
    """Segment (and, where ground truth is found, evaluate) every case of ``inputs`` with each model.

    Writes ``out_dir/masks/<model>/<case>.nii.gz`` (or ``.png``), ``results.csv`` (``results.parquet``
    with ``parquet``), ``summary.md`` and ``summary.png``. Cases done before, on the same input and
    model bytes, are skipped.

    Args:
        inputs: folders of scans, scan files, or CSVs with a ``path`` column (:func:`find_cases`).
        models: weights ids, e.g. ``["unet.brats", "unet.lgg"]``.
        workers: worker processes (Ray: actors); default this machine's cores (Ray: the cluster's CPUs).
        ray: None to run here; ``"local"``, ``"auto"`` or an address for Ray Data.

    Raises:
        CohortError: no cases found. WeightsError / KeyError: an unknown model (before any work).
    """
    if not models:
        raise ValueError("give at least one model (--model ID)")
    models = list(dict.fromkeys(models))
    cases = find_cases(inputs)
    out = Path(out_dir)
    store = ResultStore(out)
    model_digests = {model: model_sha256(model, weights_dir) for model in models}
    keys, tasks, skipped = [], [], 0
    for case in cases:
        digest = input_sha256(case)
        pending = []
        for model in models:
            keys.append(row_key(case.name, model))
            if store.done(row_key(case.name, model), digest, model_digests[model]):
                skipped += 1
            else:
                pending.append({"case": case.name, "model": model, "input_sha256": digest, "model_sha256": model_digests[model]})
        if pending:
            tasks.append(Task(case.name, {"case": asdict(case), "rows": pending}))
    if workers is None:
        workers = 0 if ray is not None else available_cores()
    factory = CohortWorkerFactory(tuple(models), str(out), backend, str(weights_dir) if weights_dir else None)
    log.info("%d cases x %d models: %d to run, %d done before", len(cases), len(models), len(keys) - skipped, skipped)
    ran = 0
    with _progress_bar(len(keys) - skipped, progress) as bar:
        for _task, rows in run_tasks(tasks, factory, workers=workers, ray=ray):
            for row in rows:
                store.add(row_key(row["case"], row["model"]), [row])
                ran += 1
            bar.update(len(rows))
    rows = store.table(keys)
    files = store.write_tables(rows, parquet=parquet)
    files += write_report(out, rows)
    return CohortRun(rows, ran, skipped, out, files)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="mask", desc="cohort", disable=not enabled, dynamic_ncols=True)
