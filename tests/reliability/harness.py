"""Processes for the reliability suite: a real server we can SIGKILL and restart on the same
port and data dir, the CLI as a subprocess, and a reaper that leaves nothing running.

Every process started here runs with environment variables that point into one temporary
root; :func:`reap` kills whatever still carries that root in its environment (auto-started
servers, orphaned workers), so teardown never depends on a process exiting politely.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "samples" / "sample.mp3"
SAMPLE_TEXT = (REPO / "samples" / "sample.txt").read_text(encoding="utf-8")

BOTH_BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
"""Run a test on the embedded server (SQLite, its own engine) and on the PostgreSQL mode (an
API server with ``--database`` and one ``worker run``): the ``live_server`` fixture reads it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sandbox:
    """Temporary config/state/data dirs and the environment that points at them."""

    root: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        for d in (self.config_dir, self.state_dir, self.data_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def key_file(self) -> Path:
        return self.config_dir / "api-key"

    @property
    def jobs_file(self) -> Path:
        return self.state_dir / "jobs.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WHISPERCLI_", "TIYARO_")) and k != "PYTEST_CURRENT_TEST"
        }
        env.update(
            WHISPERCLI_CONFIG_DIR=str(self.config_dir),
            WHISPERCLI_STATE_DIR=str(self.state_dir),
            WHISPERCLI_DATA_DIR=str(self.data_dir),
            WHISPERCLI_URL=self.url,
            WHISPERCLI_SANDBOX=str(self.root),  # the reaper's tag
            HF_HUB_OFFLINE="1",
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def key(self) -> str:
        return self.key_file.read_text(encoding="utf-8").strip()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key()}"}


class Server:
    """``whispercli server run`` in its own session, on the sandbox's port and data dir."""

    def __init__(
        self,
        sandbox: Sandbox,
        *args: str,
        data_dir: Path | None = None,
        database: str | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.args = (*args, "--database", database) if database else args
        self.database = database
        self.data_dir = data_dir or sandbox.data_dir
        self.log = sandbox.root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.worker: Worker | None = None
        """With a database: the one ``worker run`` that runs the jobs."""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "whispercli", "server", "run",
            "--host", "127.0.0.1", "--port", str(self.sandbox.port),
            "--data-dir", str(self.data_dir), *self.args,
        ]  # fmt: skip

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> Server:
        self._spawn()
        if wait:
            self.wait_ready(timeout)
        return self

    def _spawn(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            self.proc = subprocess.Popen(
                self.command(),
                env=self.sandbox.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(requests.RequestException, FileNotFoundError):
                r = requests.get(
                    self.sandbox.url + "/v1/health", headers=self.sandbox.auth(), timeout=2
                )
                if r.status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the server did not become healthy in {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""

    def children(self) -> list[int]:
        return children_of(self.pid)

    def worker_pid(self, timeout: float = 30.0) -> int:
        """The engine's worker process: a multiprocessing child of the server."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for pid in self.children():
                if "spawn_main" in cmdline(pid):
                    return pid
            time.sleep(0.1)
        raise RuntimeError(f"no worker process under server pid {self.pid}")

    def kill(self) -> None:
        """SIGKILL the server process alone, as a crash would (its children are not told)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL the whole process group; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(15)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        return self.proc.returncode


class Worker(Server):
    """``whispercli worker run --database`` in its own session, with the sandbox's env."""

    def __init__(self, sandbox: Sandbox, database: str) -> None:
        super().__init__(sandbox, database=database)
        self.log = sandbox.root / "worker.log"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "whispercli", "worker", "run", *self.args]

    def start(self, *, wait: bool = True, timeout: float = 60.0) -> Worker:
        self._spawn()
        return self


def run_cli(
    sandbox: Sandbox,
    *args: str,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m whispercli ARGS`` in the sandbox; output decoded as text."""
    proc = subprocess.run(
        [sys.executable, "-m", "whispercli", *args],
        env=env or sandbox.env(),
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd or sandbox.root,
        start_new_session=True,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def start_cli(
    sandbox: Sandbox, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m whispercli ARGS`` in the background (its own session, text pipes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "whispercli", *args],
        env=env or sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=sandbox.root,
        start_new_session=True,
    )


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:") and int(line.split()[1]) == pid:
                out.append(int(entry.name))
    return out


def tagged(root: Path) -> list[int]:
    """Live processes whose environment carries the sandbox tag for ``root``."""
    tag = f"WHISPERCLI_SANDBOX={root}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and tag in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def reap(root: Path) -> list[int]:
    """Kill every process started for ``root``; returns the pids that were still alive."""
    alive = tagged(root)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while tagged(root) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
