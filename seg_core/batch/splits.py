"""A dataset split through the batch path: :func:`seg_core.evaluate.evaluate`'s groups as :func:`run_tasks` tasks.

Each patient (group) of a split is one task; the worker is :func:`seg_core.evaluate.iter_predictions`
over that group with a model loaded once per worker, so a split runs on a local pool or on Ray with
the figures of the sequential loop, and, given a folder, resumes from its journal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seg_core.batch.cases import group_sha256
from seg_core.batch.results import ResultStore
from seg_core.batch.runner import Task, run_tasks
from seg_core.batch.worker import model_sha256
from seg_core.data import DatasetError, open_dataset

#: Columns the journal adds to iter_predictions' rows, left out of the figures again.
_JOURNAL_ONLY = ("status", "input_sha256", "model_sha256")


@dataclass(frozen=True)
class GroupEvaluator:
    """The per-group work of :func:`evaluate` as a :mod:`seg_core.batch` worker factory (picklable).

    Each worker (this process, a pool process or a Ray actor) loads the model and opens the
    dataset once, then turns ``{"group": ...}`` payloads into :func:`iter_predictions` rows.
    """

    model: str
    dataset_name: str
    data_root: str
    weights_dir: str

    def __call__(self) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
        from seg_core.evaluate import iter_predictions  # evaluate imports this module
        from seg_core.inference import Segmenter
        from seg_core.weights import load_model

        segmenter = Segmenter(load_model(self.model, self.weights_dir))
        dataset = open_dataset(self.dataset_name, self.data_root)
        return lambda payload: list(iter_predictions(segmenter, dataset, [payload["group"]]))


def split_rows(
    factory: GroupEvaluator,
    groups: list[str],
    volumetric: bool,
    limit: int | None,
    workers: int,
    ray: str | None,
    out: str | Path | None = None,
) -> list[dict[str, Any]]:
    """:func:`iter_predictions`' rows of ``groups``, in group order, computed by :func:`seg_core.batch.run_tasks`.

    With ``out``, each finished group is journalled there (:class:`seg_core.batch.results.ResultStore`)
    and a rerun takes it from the journal when the group's files and the model are unchanged.
    """
    if limit:
        # A limit is counted in images across groups, in order: only a lazy in-process loop knows
        # when to stop, so a limited run stays sequential (and is not journalled: it is partial).
        workers, ray, out = 1, None, None
    store = ResultStore(out) if out is not None else None
    by_group: dict[str, list[dict[str, Any]]] = {}
    tasks = []
    if store is not None:
        dataset = open_dataset(factory.dataset_name, factory.data_root)
        model_digest = model_sha256(factory.model, factory.weights_dir)
    for group in groups:
        base = {"case": group, "group": group}
        if store is not None:
            base.update(input_sha256=group_sha256(dataset, group), model_sha256=model_digest)
            if store.done(f"{factory.model}|{group}", base["input_sha256"], model_digest):
                # The journal keeps nan as null (JSON has no nan); iter_predictions never gives None.
                stored = store.table([f"{factory.model}|{group}"])
                by_group[group] = [
                    {k: math.nan if v is None else v for k, v in row.items() if k not in _JOURNAL_ONLY} for row in stored
                ]
                continue
        tasks.append(Task(group, {"group": group, "rows": [base]}))
    counted = 0
    for task, rows in run_tasks(tasks, factory, workers=workers, ray=ray):
        failed = [row for row in rows if row.get("status") == "error"]
        if failed:
            raise DatasetError(f"evaluating {task.key} of {factory.dataset_name} failed: {failed[0]['error']}")
        by_group[task.key] = rows
        if store is not None:
            store.add(
                f"{factory.model}|{task.key}",
                [
                    {**row, **{k: v for k, v in task.payload["rows"][0].items() if k in _JOURNAL_ONLY}, "status": "ok"}
                    for row in rows
                ],
            )
        counted += 1 if volumetric else len(rows)
        if limit and counted >= limit:
            break
    ordered = [row for group in groups for row in by_group.get(group, [])]
    if limit and not volumetric:
        ordered = ordered[:limit]
    return ordered
