"""The process-wide decode budget: a semaphore counted in bytes, shared by every upload being read.

The per-upload limits (:mod:`.limits`) bound one upload; this bounds them all together, so that N
concurrent decompression bombs cannot exhaust the machine. Each :func:`~seg_core.scans.load_scan`
opens a :class:`Reservation`; the readers :func:`charge` it with the bytes they are about to hold
(the declared size first where a header gives one, then the real bytes as a stream produces them)
and the reservation is released, whatever happens, when ``load_scan`` returns. A charge that does
not fit waits for other uploads to finish, at most ``wait_s`` seconds per upload in all, and then
raises :class:`DecodeBusy` (a server answers it with 503 and ``Retry-After``); when all uploads
holding bytes wait on each other, the youngest raises it at once, so none waits on a deadlock. One
upload that needs more than the whole budget is refused at once with a
:class:`~seg_core.scans.limits.ScanError`.

The capacity is ``BRAINSEG_DECODE_BUDGET_MB`` when set, else a quarter of the memory available when
first used, between 256 MiB and 1.5 GiB; the wait is ``BRAINSEG_DECODE_WAIT_S`` (default 10 s).
Tests and servers set both with :func:`set_decode_budget`.

Hand-written: ``threading.BoundedSemaphore`` counts permits one at a time and cannot grow a holder's
share as a stream reveals its size, nor tell "busy" from "too large for the whole budget".
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

from .limits import ScanError, human_bytes

logger = logging.getLogger(__name__)

ENV_BUDGET_MB = "BRAINSEG_DECODE_BUDGET_MB"
ENV_WAIT_S = "BRAINSEG_DECODE_WAIT_S"
#: Share of MemAvailable the default budget takes, and its bounds.
DEFAULT_FRACTION = 0.25
DEFAULT_FLOOR = 256 * 1024 * 1024
DEFAULT_CAP = 1536 * 1024 * 1024
#: Longest one upload waits, in all, for others to release their bytes before DecodeBusy.
DEFAULT_WAIT_S = 10.0


class DecodeBusy(Exception):  # noqa: N818 - the name the server maps to 503, as the issue asks
    """Other uploads hold the decode budget; not the file's fault, so not a ScanError: retry later.

    Attributes:
        retry_after_s: seconds after which a retry is likely to find room.
    """

    def __init__(self, retry_after_s: float, needed: int, capacity: int) -> None:
        self.retry_after_s = float(retry_after_s)
        self.needed = needed
        self.capacity = capacity
        super().__init__(
            f"The server is busy decoding other uploads; try again in {math.ceil(self.retry_after_s)} s "
            f"(this upload needs {human_bytes(needed)} of the {human_bytes(capacity)} decode budget)."
        )


class DecodeBudget:
    """Bytes that uploads being decoded may hold at once, across all threads of the process.

    Uploads learn their sizes as they go, so one may hold bytes while it waits for more. When every
    upload holding bytes is waiting, none would ever release any: the youngest of them gives up at
    once with DecodeBusy (releasing its bytes), and the older ones go on ("wait-die").
    """

    def __init__(self, capacity: int, wait_s: float = DEFAULT_WAIT_S) -> None:
        if capacity <= 0:
            raise ValueError(f"The decode budget must be positive, got {capacity} bytes.")
        if wait_s < 0:
            raise ValueError(f"The decode wait must be zero or more seconds, got {wait_s}.")
        self.capacity = int(capacity)
        self.wait_s = float(wait_s)
        self._lock = threading.Condition()
        self._reserved = 0
        self._peak = 0
        self._holding: set[Reservation] = set()
        self._waiting: set[Reservation] = set()
        self._opened = itertools.count()

    @property
    def reserved(self) -> int:
        """Bytes held now by all open reservations."""
        with self._lock:
            return self._reserved

    @property
    def peak(self) -> int:
        """Most bytes held at once since creation or :meth:`reset_peak`."""
        with self._lock:
            return self._peak

    def reset_peak(self) -> None:
        with self._lock:
            self._peak = self._reserved

    def next_seq(self) -> int:
        return next(self._opened)

    def acquire(self, holder: Reservation, nbytes: int) -> None:
        """Add ``nbytes`` to ``holder``, waiting for room at most the ``holder.wait_left`` seconds.

        Raises DecodeBusy (after giving back all ``holder`` holds) when that wait runs out, or at
        once when ``holder`` is the youngest of uploads that all wait on each other.
        """
        with self._lock:
            if self._reserved + nbytes <= self.capacity:
                self._take_locked(holder, nbytes)
                return
            start = time.monotonic()
            self._waiting.add(holder)
            self._lock.notify_all()  # the others re-check whether everyone now waits
            try:
                while self._reserved + nbytes > self.capacity:
                    remaining = holder.wait_left - (time.monotonic() - start)
                    if remaining <= 0 or self._youngest_stuck() is holder:
                        needed = holder.held + nbytes
                        self._release_locked(holder, holder.held)
                        raise DecodeBusy(max(1.0, self.wait_s), needed, self.capacity)
                    self._lock.wait(remaining)
            finally:
                self._waiting.discard(holder)
                holder.wait_left = max(0.0, holder.wait_left - (time.monotonic() - start))
            self._take_locked(holder, nbytes)

    def _take_locked(self, holder: Reservation, nbytes: int) -> None:
        self._reserved += nbytes
        holder.held += nbytes
        self._holding.add(holder)
        self._peak = max(self._peak, self._reserved)

    def release(self, holder: Reservation, nbytes: int) -> None:
        with self._lock:
            self._release_locked(holder, nbytes)

    def _release_locked(self, holder: Reservation, nbytes: int) -> None:
        nbytes = min(max(nbytes, 0), holder.held)
        self._reserved -= nbytes
        holder.held -= nbytes
        if not holder.held:
            self._holding.discard(holder)
        self._lock.notify_all()

    def _youngest_stuck(self) -> Reservation | None:
        """The youngest upload holding bytes when all that hold bytes are waiting; else None."""
        if not self._holding or not self._holding <= self._waiting:
            return None
        return max(self._holding, key=lambda h: h.seq)


class Reservation:
    """One upload's share of a :class:`DecodeBudget`; grows as the decode learns its sizes."""

    def __init__(self, budget: DecodeBudget, name: str) -> None:
        self.budget = budget
        self.name = name
        self.held = 0  # changed by the budget, under its lock
        self.seq = budget.next_seq()  # opening order: the youngest gives way when all wait
        self.wait_left = budget.wait_s  # seconds this upload may still wait, in all its grows

    def grow(self, nbytes: int) -> None:
        """Hold ``nbytes`` more; ScanError when the upload alone exceeds the budget, DecodeBusy on timeout."""
        if nbytes <= 0:
            return
        total = self.held + nbytes
        if total > self.budget.capacity:
            raise ScanError(
                f"{self.name} needs at least {human_bytes(total)} of memory to decode, more than the whole decode "
                f"budget ({human_bytes(self.budget.capacity)}, shared by all uploads at once); it was refused. "
                "Upload one scan at a time."
            )
        self.budget.acquire(self, nbytes)

    def shrink(self, nbytes: int) -> None:
        """Give back bytes the upload no longer holds (a buffer freed, a declared size not reached)."""
        if nbytes > 0 and self.held:
            self.budget.release(self, nbytes)

    def close(self) -> None:
        self.shrink(self.held)


_shared: DecodeBudget | None = None
_shared_lock = threading.Lock()
_current: ContextVar[Reservation | None] = ContextVar("seg_core_decode_reservation", default=None)


def _memory_available() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else physical memory, else None."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _env_number(name: str, default: float | None) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}.") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {text!r}.")
    return value


def default_capacity() -> int:
    """``BRAINSEG_DECODE_BUDGET_MB`` MiB, else a quarter of MemAvailable within [256 MiB, 1.5 GiB]."""
    megabytes = _env_number(ENV_BUDGET_MB, None)
    if megabytes is not None:
        if megabytes < 1:
            raise ValueError(f"{ENV_BUDGET_MB} must be at least 1 (MiB), got {megabytes:g}.")
        return int(megabytes * 1024 * 1024)
    available = _memory_available()
    if available is None:
        return DEFAULT_CAP
    return int(min(max(available * DEFAULT_FRACTION, DEFAULT_FLOOR), DEFAULT_CAP))


def decode_budget() -> DecodeBudget:
    """The process-wide budget, created from the environment on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = DecodeBudget(default_capacity(), _env_number(ENV_WAIT_S, DEFAULT_WAIT_S) or 0.0)
            logger.info("Decode budget: %s for all uploads at once, %.0f s wait", human_bytes(_shared.capacity), _shared.wait_s)
        return _shared


def set_decode_budget(capacity: int | None, wait_s: float | None = None) -> DecodeBudget:
    """Replace the process-wide budget (``capacity`` bytes; None: from the environment again).

    Uploads already being read keep the budget they started with.
    """
    global _shared
    with _shared_lock:
        _shared = None
    if capacity is None and wait_s is None:
        return decode_budget()
    if wait_s is None:
        wait_s = _env_number(ENV_WAIT_S, DEFAULT_WAIT_S) or 0.0
    fresh = DecodeBudget(default_capacity() if capacity is None else capacity, wait_s)
    with _shared_lock:
        _shared = fresh
    return fresh


@contextlib.contextmanager
def reservation(name: str = "The upload") -> Iterator[Reservation]:
    """One upload's reservation, current for :func:`charge` in this thread, released on exit.

    A reservation already open in this context is reused (a reader calling ``load_scan`` again).
    """
    open_one = _current.get()
    if open_one is not None:
        yield open_one
        return
    held = Reservation(decode_budget(), name)
    token = _current.set(held)
    try:
        yield held
    finally:
        _current.reset(token)
        held.close()


def charge(nbytes: int) -> None:
    """Add ``nbytes`` to the current upload's reservation (none open: readers called directly, no-op)."""
    held = _current.get()
    if held is not None:
        held.grow(int(nbytes))


def refund(nbytes: int) -> None:
    """Give ``nbytes`` of the current upload's reservation back once they are freed."""
    held = _current.get()
    if held is not None:
        held.shrink(int(nbytes))
