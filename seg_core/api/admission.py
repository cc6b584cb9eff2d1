"""Backpressure: a bounded queue in front of the inference threads, so a busy server says so at once.

``POST /segment`` is admitted only while fewer than ``workers + max_waiting`` segmentations are in
flight (uploading, waiting or running); beyond that it is answered ``429 Too Many Requests`` with a
``Retry-After`` before its body is read. Admitted requests run their decoding and inference on a
thread pool of ``workers`` threads of their own, so the event loop (and with it ``/health`` and
``/ready``) never waits for a forward pass, and the default thread pool that serves the other sync
routes is never filled by segmentations.

Why not uvicorn's ``--limit-concurrency``: it counts every connection, the liveness probe too, so a
full server would refuse its own ``/health`` (a probe would then restart a healthy server). Why not
a plain ``asyncio.Semaphore``: a semaphore makes excess requests wait without bound, which is the
queue growing without limit that this module exists to stop.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from seg_core.api.memory import return_freed_memory

__all__ = ["AdmissionMiddleware", "InferenceQueue"]

Result = TypeVar("Result")

#: Weight of the newest request in the running mean service time that sets Retry-After.
_SERVICE_TIME_SMOOTHING = 0.2


class InferenceQueue:
    """At most ``workers`` segmentations run at once and at most ``max_waiting`` more wait; the rest are refused.

    Args:
        workers: threads that decode scans and run models (each forward pass uses the model's own
            intra-op threads as well).
        max_waiting: admitted requests beyond the running ones (uploading or queued).
        trim_memory: hand freed heap memory back to the OS after each request
            (:func:`~seg_core.api.memory.return_freed_memory`).

    Example:
        >>> queue = InferenceQueue(workers=2, max_waiting=8)
        >>> queue.try_admit(), queue.snapshot()["admitted"]
        (True, 1)
    """

    def __init__(self, workers: int, max_waiting: int, *, trim_memory: bool = True) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError(f"an inference queue needs workers >= 1 and max_waiting >= 0, got {workers} and {max_waiting}")
        self.workers = workers
        self.max_waiting = max_waiting
        self.trim_memory = trim_memory
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="brainseg-segment")
        self._lock = threading.Lock()
        self._admitted = 0
        self._running = 0
        self._refused = 0
        self._mean_seconds = 1.0  # a first guess until a request has been timed

    @property
    def capacity(self) -> int:
        """Most segmentations in flight at once."""
        return self.workers + self.max_waiting

    def try_admit(self) -> bool:
        """Take a place in the queue if one is free (never waits)."""
        with self._lock:
            if self._admitted >= self.capacity:
                self._refused += 1
                return False
            self._admitted += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: the requests ahead of it at the recent mean service time."""
        with self._lock:
            ahead = max(self._admitted - self._running, 0) + 1
            return int(min(max(math.ceil(self._mean_seconds * ahead / self.workers), 1), 120))

    def snapshot(self) -> dict[str, int]:
        """The queue's figures for ``/ready``: workers, capacity, admitted, running, waiting, refused so far."""
        with self._lock:
            return {
                "workers": self.workers,
                "capacity": self.capacity,
                "admitted": self._admitted,
                "running": self._running,
                "waiting": max(self._admitted - self._running, 0),
                "refused": self._refused,
            }

    async def run(self, function: Callable[..., Result], *args: Any) -> Result:
        """``function(*args)`` on one of the queue's threads; the event loop stays free meanwhile."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._timed, partial(function, *args))

    def _timed(self, call: Callable[[], Result]) -> Result:
        with self._lock:
            self._running += 1
        started = time.perf_counter()
        try:
            return call()
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self._running -= 1
                self._mean_seconds += _SERVICE_TIME_SMOOTHING * (elapsed - self._mean_seconds)
            if self.trim_memory:
                # The call's scan, probabilities and upload copies are garbage by now (its frame is gone).
                return_freed_memory()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class AdmissionMiddleware:
    """ASGI middleware admitting ``POST`` requests to ``paths`` through an :class:`InferenceQueue`.

    It sits in front of the body: a refused request is answered before a byte of its upload is read.
    """

    def __init__(self, app: ASGIApp, queue: InferenceQueue, paths: tuple[str, ...] = ("/segment",)) -> None:
        self.app = app
        self.queue = queue
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        if not self.queue.try_admit():
            retry = self.queue.retry_after_s()
            detail = f"the server is busy ({self.queue.capacity} segmentations in flight, the most it queues); retry in {retry} s"
            response = JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": str(retry)})
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.queue.release()
