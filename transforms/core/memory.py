"""A worker's memory between groups: handing the allocator's free pages back to the system."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hands the allocator's free pages back to the system (glibc's ``malloc_trim``; a no-op where
    there is none). Called when a group (a bucket of documents, a spilled run, a shard) is done: its
    objects are freed, but glibc keeps most of the freed heap mapped, so without this a worker's
    resident memory creeps up group by group (measured: 50-100 MB lower at 160 MB of text)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
