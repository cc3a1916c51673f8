"""Shared fixtures: isolated whispercli directories and real local servers on free ports.

* ``isolated_env`` -- points WHISPERCLI_CONFIG_DIR / STATE_DIR / DATA_DIR of *this* process at
  fresh temporary directories (and clears WHISPERCLI_URL / WHISPERCLI_API_KEY /
  WHISPERCLI_PROFILE), so a test never reads or writes the user's real files.
* ``free_port`` -- a TCP port on 127.0.0.1 that nothing listens on right now.
* ``server`` -- one real ``python -m whispercli server run`` subprocess per test module, with
  its own temporary directories; yields a :class:`ServerHandle`.
* ``server_factory`` -- start extra servers (own flags, reuse a data dir after a kill); every
  server it started is stopped at the end of the test.

A :class:`ServerHandle` has ``url``, ``api_key``, ``headers`` (the Bearer header),
``data_dir``, ``config_dir``, ``state_dir``, ``env`` (the environment variables the server got:
the three dirs and ``WHISPERCLI_URL``; merge it into a CLI subprocess's environment to talk to
this server with its key file), ``proc`` (the Popen), ``log_path`` and ``stop(kill=False)``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MP3 = REPO / "samples" / "sample.mp3"
SAMPLE_TXT = REPO / "samples" / "sample.txt"
START_TIMEOUT = 60.0
_DIR_VARS = ("WHISPERCLI_CONFIG_DIR", "WHISPERCLI_STATE_DIR", "WHISPERCLI_DATA_DIR")


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Temporary config/state/data dirs for this process; returns the variables set."""
    env = {}
    for var, name in zip(_DIR_VARS, ("config", "state", "data"), strict=True):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
        env[var] = str(folder)
    for var in ("WHISPERCLI_URL", "WHISPERCLI_API_KEY", "WHISPERCLI_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return env


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that is free at the time of the call."""
    return find_free_port()


@dataclass
class ServerHandle:
    url: str
    port: int
    api_key: str
    config_dir: Path
    state_dir: Path
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> int | None:
        """SIGKILL (``kill=True``) or SIGTERM then wait, killing if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_server(
    root: Path,
    *,
    port: int | None = None,
    args: tuple[str, ...] | list[str] = (),
    dirs_from: ServerHandle | None = None,
) -> ServerHandle:
    """Start ``python -m whispercli server run`` and wait until ``/v1/health`` answers 200.

    ``dirs_from`` reuses another (stopped) server's config, state and data dirs, as a restart
    after a crash would. Extra flags (``--max-upload-mb 1``...) go in ``args``.
    """
    port = port or find_free_port()
    root.mkdir(parents=True, exist_ok=True)
    if dirs_from is not None:
        config, state, data = dirs_from.config_dir, dirs_from.state_dir, dirs_from.data_dir
    else:
        config, state, data = root / "config", root / "state", root / "data"
    url = f"http://127.0.0.1:{port}"
    env = {
        "WHISPERCLI_CONFIG_DIR": str(config),
        "WHISPERCLI_STATE_DIR": str(state),
        "WHISPERCLI_DATA_DIR": str(data),
        "WHISPERCLI_URL": url,
    }
    log_path = root / f"server-{port}-{time.monotonic_ns()}.log"
    argv = ["--port", str(port), "--log-level", "info", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "whispercli", "server", "run", *argv],
            env={**os.environ, **env, "HF_HUB_OFFLINE": "1"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    deadline = time.monotonic() + START_TIMEOUT
    key_file = config / "api-key"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"server did not come up:\n{log_path.read_text()}")
        if key_file.exists():
            key = key_file.read_text().strip()
            with contextlib.suppress(requests.RequestException):
                resp = requests.get(
                    f"{url}/v1/health", headers={"Authorization": f"Bearer {key}"}, timeout=2
                )
                if resp.status_code == 200:
                    break
        time.sleep(0.1)
    return ServerHandle(url, port, key, config, state, data, env, proc, log_path, argv)


class ServerFactory:
    """Starts servers for one test and stops all of them afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ServerHandle] = []

    def start(self, *args: str, dirs_from: ServerHandle | None = None) -> ServerHandle:
        handle = start_server(self.root, args=list(args), dirs_from=dirs_from)
        self.started.append(handle)
        return handle

    def stop_all(self) -> None:
        for handle in self.started:
            handle.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start extra servers (``factory.start("--max-queue", "1")``); all stopped at teardown."""
    factory = ServerFactory(tmp_path / "servers")
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One real server per test module on a free port, with temporary directories."""
    handle = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield handle
    finally:
        handle.stop()
