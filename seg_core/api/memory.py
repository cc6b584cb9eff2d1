"""Handing freed heap memory back to the operating system after a request (glibc ``malloc_trim``).

Why: a request allocates large transient arrays (the upload, the decoded scan as float32, the
probabilities, a decompression buffer). glibc serves allocations above its mmap threshold with
``mmap`` and returns them on ``free``, but the threshold is dynamic: each freed mmapped chunk raises
it (up to 32 MiB on 64-bit), after which arrays of that size come from the heap arenas, whose free
pages glibc keeps. Measured on the API before this module: RSS stayed at 1.7 GB after normal load
and 4.7 GB after the decompression bombs, although nothing was alive.

Why ``malloc_trim(0)`` and not an allocator swap: jemalloc or mimalloc would need ``LD_PRELOAD`` in
every way the server is started (uvicorn, tests, the app) and a system package; a fixed
``M_MMAP_THRESHOLD`` via ``mallopt`` would make every large array a fresh mmap (page faults on each
request). ``malloc_trim(0)`` releases the free pages of every arena (glibc >= 2.8 also those in the
middle of a heap, with ``madvise``) in one call that releases the GIL (ctypes does for foreign
calls); on other C libraries (musl, macOS) it is absent and this is a no-op.

No well-kept library wraps it (``psutil`` reads RSS but does not trim), so it is written here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

__all__ = ["return_freed_memory"]

logger = logging.getLogger(__name__)


@functools.cache
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        logger.info("malloc_trim is not available (not glibc): freed memory is left to the allocator")
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def return_freed_memory() -> bool:
    """Give the C heap's free pages back to the OS; True when glibc's ``malloc_trim`` ran and released some."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
