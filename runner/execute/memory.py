"""Handing freed memory back to the operating system between chunks.

Every chunk's reader and writer allocate and free their batches (connectorx's Rust buffers,
Arrow arrays, the drivers' own). glibc keeps freed blocks in its arenas, fragmented, so a
long run's resident size crept up with the number of chunks: MariaDB -> SQLite peaked at
225-242 MB over 4 chunks (1M rows) and 266-290 MB over 20 (5M rows). ``malloc_trim`` after each
chunk returns what is free at the top of the heaps and in whole free pages.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc: nothing to trim
        return None


def trim() -> None:
    """Give free heap memory back to the OS (glibc only; a no-op elsewhere)."""
    release = _malloc_trim()
    if release is not None:
        release(0)
