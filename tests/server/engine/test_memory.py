"""The engine process's heap settings (server/engine/memory.py), each in a fresh interpreter:
they change the whole process's malloc."""

from __future__ import annotations

import os
import subprocess
import sys

from support.samples import REPO


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


TUNE = "from whispercli.server.engine import memory; print(memory.tune_heap())"


def test_the_arena_limit_applies_unless_the_operator_set_one() -> None:
    assert _run(TUNE) == "True"  # glibc (this machine's, CI's)
    assert _run(TUNE, MALLOC_ARENA_MAX="8") == "False"


def test_give_back_returns_freed_heap_memory_to_the_system() -> None:
    """1 KiB blocks come from malloc's heap (not Python's small-object arenas, not mmap); with
    the newest one kept, free() alone cannot shrink the heap: only a trim hands pages back."""
    code = """
from whispercli.server.engine import memory
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
blocks = [bytes(1024) for _ in range(200_000)]
last = blocks.pop()
del blocks
before = rss()
memory.give_back()
print(before, rss())
"""
    before, after = map(int, _run(code).split())
    assert before - after > 100, (before, after)  # of about 200 MiB freed
