"""Looking at and ending the processes tests start, through /proc (Linux).

Every process a test starts in a :class:`~support.sandbox.Sandbox` carries the sandbox's tag
in its environment; :func:`reap` kills whatever still carries it (auto-started servers, engine
children, orphaned workers), so a teardown never depends on a process exiting politely.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

TAG = "WHISPERCLI_SANDBOX"
"""The environment variable that marks a process as started for one sandbox (its root)."""


T = TypeVar("T")


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    """The direct children of ``pid`` (of every one of its threads)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def until(check: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.05) -> T:
    """``check()``'s first truthy answer, asked every ``interval`` s for up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s")


def rss_mib(pid: int) -> float:
    """The process's resident memory in MiB (0 once it is gone)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def alive(pid: int) -> bool:
    """Running (a zombie is not: it only waits for its parent to read its exit code)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to stop running; whether it did."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def engine_child(pid: int, timeout: float = 30.0) -> int:
    """The engine process of a server or worker ``pid``: its multiprocessing (spawn) child."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in children_of(pid):
            if "spawn_main" in cmdline(child):
                return child
        time.sleep(0.05)
    raise AssertionError(f"no engine process under pid {pid}: {children_of(pid)}")


def tagged(root: Path) -> list[int]:
    """Live processes whose environment carries the sandbox tag for ``root``."""
    tag = f"{TAG}={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if tag in environ.split(b"\0") and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def reap(root: Path) -> list[int]:
    """Kill every process started for ``root``; returns the pids that were still alive."""
    left = tagged(root)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while tagged(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
