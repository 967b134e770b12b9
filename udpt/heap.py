"""Handing the pages of freed memory back to the system after a large transient.

glibc keeps what a program frees for its next allocations, so the buffers a
start-up decodes and drops (the snapshot's pieces, the tail's batches) stay in
the resident memory an operator sees. ``malloc_trim`` returns the whole free
pages among them. Where the C library has no ``malloc_trim`` (macOS), this does nothing.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

__all__ = ["release_free_heap"]


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_heap() -> None:
    """Return the free pages of the C heap to the system, where the C library can."""
    if _TRIM is not None:
        _TRIM(0)
