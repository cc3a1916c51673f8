"""Start the embedded server on demand (client path: stdlib, requests and filelock only).

The CLI calls :func:`ensure_local_server` when its endpoint is the local default and nothing
answers there. A file lock in the state dir serialises concurrent CLIs, and the server's own
port bind settles any race that is left, so two terminals auto-starting at once end with one
server. The child is fully detached: new session, stdin from /dev/null, stdout and stderr to
the log file, so it never holds the caller's terminal or a CI job's pipes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import whispercli.paths as paths
from whispercli.errors import UnreachableError, seconds_text
from whispercli.extras import LOCAL, require
from whispercli.protocol import HEALTH_PATH

AUTO_IDLE_TIMEOUT = 600
"""Seconds an auto-started server waits with no request and no work before it exits."""
_POLL_INTERVAL = 0.1


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when an HTTP server answers at ``url`` (any status: a 401 is still a server)."""
    import requests  # lazily: this module is imported by every `whispercli` start-up

    try:
        requests.get(url.rstrip("/") + HEALTH_PATH, timeout=(1.0, timeout))
    except requests.RequestException:
        return False
    return True


def read_pid_file(port: int) -> dict[str, Any] | None:
    """What ``server run`` recorded for ``port`` (pid, url), or None."""
    try:
        data = json.loads(paths.server_pid_file(port).read_text("utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def is_our_server(pid: int) -> bool:
    """True when ``pid`` is alive and is a whispercli server (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the pid file
    return b"whispercli" in cmdline and b"server" in cmdline


def spawn_server(args: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start ``python -m whispercli server run ARGS`` detached, logging to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "whispercli", "server", "run", *args],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(fd)


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float, log_file: Path) -> None:
    """Wait for ``url`` to answer; raise :class:`UnreachableError` if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(url, timeout=1.0):
            return
        if proc.poll() is not None:
            if answers(url, timeout=1.0):  # lost the bind race to another server: fine
                return
            raise UnreachableError(
                f"the local server exited while starting (exit code {proc.returncode})",
                hint=f"see {log_file}",
            )
        time.sleep(_POLL_INTERVAL)
    raise UnreachableError(
        f"the local server did not answer at {url} within {seconds_text(timeout)}",
        hint=f"see {log_file}",
    )


def ensure_local_server(url: str = paths.DEFAULT_LOCAL_URL, timeout: float = 30.0) -> bool:
    """Make sure a local server answers at ``url``; return True if this call started it."""
    from filelock import FileLock, Timeout  # here: filelock costs ~10 ms on every command

    if answers(url):
        return False
    require(LOCAL, "starting the embedded server (nothing answers at the local default URL)")
    port = urlsplit(url).port or paths.DEFAULT_PORT
    state = paths.state_dir()
    state.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(state / f"server-{port}.lock"), timeout=timeout):
            if answers(url):
                return False
            log_file = paths.server_log_file()
            args = ["--port", str(port), "--idle-timeout", str(AUTO_IDLE_TIMEOUT)]
            proc = spawn_server(args, log_file)
            wait_until_up(url, proc, timeout, log_file)
            return True
    except Timeout:
        raise UnreachableError(
            "another whispercli is starting the local server and it is not up after "
            f"{seconds_text(timeout)}",
            hint=f"see {paths.server_log_file()}",
        ) from None
