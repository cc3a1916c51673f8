"""The engine process's heap: memory that follows the work, not the longest file seen.

With glibc's defaults the engine's memory ratchets up with file length and stays there after
the job: every decoding thread gets a malloc arena of its own, and freed memory inside those
arenas (the VAD's and the decoder's transient buffers, several MiB each) is kept, fragmented,
rather than handed back. So the engine runs with two arenas, hands free memory back every
``TRIM_SECONDS`` while a job runs and once when it goes idle. Measured side by side by
bench/engine_memory.py (figures in bench/RESULTS.md). A fixed 4 MiB mmap threshold kept the
peak a little lower still but cost about 10 % more CPU (every large buffer a fresh mapping),
so it is not used.

Only glibc has ``mallopt`` and ``malloc_trim``; elsewhere (musl, macOS) nothing changes. An
operator's own ``MALLOC_ARENA_MAX`` wins.
"""

from __future__ import annotations

import ctypes
import functools
import os

M_ARENA_MAX = -8
"""mallopt's parameter number (glibc's malloc.h)."""
ARENA_MAX = 2
TRIM_SECONDS = 0.5
"""How often a busy engine hands its free heap memory back (a trim takes well under 1 ms)."""


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)  # the process's own C library
        libc.mallopt  # noqa: B018 - glibc and musl have it; macOS does not
        libc.malloc_trim  # noqa: B018 - glibc only
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def available() -> bool:
    """Whether this process's C library has the calls (glibc)."""
    return _glibc() is not None


def tune_heap() -> bool:
    """At most ``ARENA_MAX`` malloc arenas in this process, unless the operator chose a number;
    call before the decoding threads start. True if applied."""
    libc = _glibc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX))


def give_back() -> bool:
    """Hand the heap's free memory back to the system. True if some was."""
    libc = _glibc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
