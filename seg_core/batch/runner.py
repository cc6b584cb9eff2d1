"""Running tasks where each worker holds its models once: in this process, a local pool, or Ray.

A *task* is a small JSON-able payload (which case, which model); a *worker factory* is a picklable
callable that builds, once per worker, the object that turns a payload into result rows (it loads
the models). The same factory runs in all three places, so the rows do not depend on where they
were computed:

* ``workers=1``: a plain loop in this process (the sequential baseline);
* ``workers=N``: a :class:`concurrent.futures.ProcessPoolExecutor` of N processes, each building
  its worker in the pool's initializer and using ``cores // N`` torch threads;
* ``ray=...``: Ray Data with an actor pool (:mod:`seg_core.batch.ray_runner`).

A task that raises becomes one error row with a one-line message; the other tasks go on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Worker = Callable[[dict[str, Any]], list[dict[str, Any]]]
WorkerFactory = Callable[[], Worker]


@dataclass(frozen=True)
class Task:
    """One unit of work.

    Attributes:
        key: unique within a run (e.g. the case name).
        payload: what the worker needs, JSON-able; ``payload["rows"]`` lists the rows the task is
            to give, each with the columns it carries whatever happens (case, model, hashes), so a
            failed task still gives them, as error rows.
    """

    key: str
    payload: dict[str, Any]


def one_line(error: BaseException) -> str:
    """The error as one line: its type when the message is empty, the message's first line otherwise."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


def run_task(worker: Worker, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """``worker(payload)``, with any exception turned into one error row (the batch goes on)."""
    try:
        return worker(payload)
    except Exception as error:  # every failure of one case is that case's row, never the run's end
        log.debug("task %s failed", payload.get("rows"), exc_info=True)
        return error_rows(payload, error)


def error_rows(payload: dict[str, Any], error: BaseException) -> list[dict[str, Any]]:
    """One error row for each row the task was to give, with the error's one-line message."""
    return [{**base, "status": "error", "error": one_line(error)} for base in payload.get("rows") or [{}]]


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, which containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int) -> int:
    """Torch (and ONNX Runtime) threads for each of ``workers`` workers sharing this machine's cores."""
    return max(1, available_cores() // max(1, workers))


# The pool's per-process worker, built once by the initializer: module state is the documented way
# to hand an initializer's result to the tasks of a ProcessPoolExecutor.
_process_worker: Worker | None = None


def _init_process(factory: WorkerFactory, threads: int) -> None:
    global _process_worker
    import torch

    torch.set_num_threads(threads)
    _process_worker = factory()


def _run_in_process(payload: dict[str, Any]) -> list[dict[str, Any]]:
    assert _process_worker is not None, "the pool initializer did not run"
    return run_task(_process_worker, payload)


def run_tasks(
    tasks: Sequence[Task],
    factory: WorkerFactory,
    workers: int = 1,
    ray: str | None = None,
) -> Iterator[tuple[Task, list[dict[str, Any]]]]:
    """Run ``tasks``, yielding ``(task, rows)`` as each finishes (in order for ``workers=1``).

    Args:
        workers: worker processes (Ray: actors); 1 runs in this process, lazily, task by task.
        ray: None for local; ``"local"`` (a Ray started here), ``"auto"`` (the running cluster) or an
            address, to run on Ray Data.
    """
    if not tasks:
        return
    if ray is not None:
        from seg_core.batch.ray_runner import run_tasks_on_ray

        yield from run_tasks_on_ray(tasks, factory, ray, workers)
        return
    if workers <= 1:
        worker = factory()
        for task in tasks:
            yield task, run_task(worker, task.payload)
        return
    workers = min(workers, len(tasks))
    # spawn, not fork: a forked child inherits torch's OpenMP thread pool in a state it cannot use.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_process, initargs=(factory, threads_per_worker(workers))
    ) as pool:
        futures = {pool.submit(_run_in_process, task.payload): task for task in tasks}
        for future in as_completed(futures):
            task = futures[future]
            try:
                rows = future.result()
            except Exception as error:  # the worker process died (out of memory, a crash in native code)
                rows = error_rows(task.payload, error)
            yield task, rows
