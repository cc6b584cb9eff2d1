"""The Ray path of :func:`seg_core.batch.runner.run_tasks`: Ray Data with an actor pool holding the models.

Ray is optional (``pip install -r requirements-cluster.txt``) and imported here only, when a run
asks for it, so ``import seg_core`` never loads it.

Each actor builds the worker once (loading its models) and is handed one task per call
(``batch_size=1``: one case is seconds of work, far more than Ray's per-batch overhead). Rows cross
back as JSON text: their columns differ between ok and error rows, which Arrow blocks would have to
reconcile, and JSON keeps them exactly as the local path makes them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from seg_core.batch.runner import Task, WorkerFactory, available_cores, run_task

log = logging.getLogger(__name__)

RAY_MISSING = (
    "the --ray option needs Ray, which is optional: pip install -r requirements-cluster.txt "
    "(ray[data]); or run without --ray to use this machine's cores"
)


def import_ray():
    """The ``ray`` module, or an ImportError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is a separate extra: fail here, not mid-run)
    except ImportError as error:
        raise ImportError(RAY_MISSING) from error
    return ray


class _TaskActor:
    """A Ray Data callable class: one per actor, holding the worker (and its models) for all its calls."""

    def __init__(self, factory: WorkerFactory, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.worker = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        keys, payloads = list(batch["key"]), list(batch["payload"])
        rows = [json.dumps(run_task(self.worker, json.loads(str(payload)))) for payload in payloads]
        return {"key": [str(k) for k in keys], "rows": rows}


def connect(ray_module, address: str) -> bool:
    """Join (or start) the Ray cluster ``address`` names; whether this call started the connection.

    ``"local"`` starts a Ray on this machine's cores; ``"auto"`` joins the cluster ``ray start --head``
    runs here (or ``RAY_ADDRESS``); anything else is an address (``HOST:PORT`` or ``ray://HOST:PORT``).
    An already connected session (a test's ``ray.init(num_cpus=2)``) is used as it is.
    """
    if ray_module.is_initialized():
        return False
    if address == "local":
        ray_module.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False)
    else:
        try:
            ray_module.init(address=address, log_to_driver=False)
        except ConnectionError as error:
            raise ConnectionError(
                f"no Ray cluster at {address!r} ({error}). Start one with `ray start --head`, give its HOST:PORT, "
                "or use --ray local for a Ray on this machine only"
            ) from None
    return True


def run_tasks_on_ray(
    tasks: Sequence[Task], factory: WorkerFactory, address: str, workers: int
) -> Iterator[tuple[Task, list[dict[str, Any]]]]:
    """Run ``tasks`` on Ray Data with ``workers`` actors (0 or less: one per CPU the cluster has)."""
    ray = import_ray()
    started = connect(ray, address)
    # The cohort's own tqdm bar shows progress; Ray Data's bars and execution logs would interleave with it.
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        actors = max(1, min(len(tasks), workers if workers > 0 else cluster_cpus))
        # One CPU per actor when the cluster has them; its torch threads follow the CPUs it reserved.
        cpus_per_actor = max(1, cluster_cpus // actors) if actors <= cluster_cpus else 1
        by_key = {task.key: task for task in tasks}
        items = [{"key": task.key, "payload": json.dumps(task.payload)} for task in tasks]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        results = dataset.map_batches(
            _TaskActor,
            fn_constructor_kwargs={"factory": factory, "threads": cpus_per_actor},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=cpus_per_actor,
        )
        for record in results.iter_rows():
            yield by_key[record["key"]], json.loads(record["rows"])
    finally:
        if started:
            ray.shutdown()
