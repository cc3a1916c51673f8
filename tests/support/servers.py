"""The one server launcher and the one worker launcher of the suite.

:class:`Server` is ``whispercli server run`` as a real process in its own session, on a
loopback port, with a :class:`~support.sandbox.Sandbox`'s dirs: start it (it is ready once
``/v1/health`` answers 200), read its log, SIGKILL it alone as a crash would, start it again
on the same port and dirs, stop it. :class:`Worker` is ``whispercli worker run`` (the
PostgreSQL mode) the same way. ``fake_engine=N`` swaps the real model for the fake engine
(N seconds a job: whispercli/server/engine/fake.py) for tests that do not check transcripts.
Whatever a sandbox started is killed by ``support.procs.reap(sandbox.root)``.

The fixtures in tests/conftest.py (``server``, ``fake_server``, ``server_factory``) wrap these.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.net import free_port
from support.procs import children_of, engine_child, reap
from support.sandbox import Sandbox

import whispercli.server.settings as settings
from whispercli.server.settings import FAKE_ENGINE_ENV

START_TIMEOUT = 60.0
FAST_FLEET = {
    settings.HEARTBEAT_ENV: "0.2",
    settings.STALLED_AFTER_ENV: "1",
    settings.QUEUE_POLL_ENV: "0.2",
    settings.RETENTION_SWEEP_ENV: "1",
}
"""The PostgreSQL mode's timings made short (ServerSettings reads them from the environment):
a heartbeat every 0.2 s, a worker dead after 1 s of silence, a queue poll every 0.2 s and a
retention sweep every second, for tests that wait for a take-over or a sweep."""


class _Process:
    """A whispercli process in its own session, in a sandbox, logging to one file."""

    name = "process"

    def __init__(
        self, sandbox: Sandbox, *, fake_engine: float | None = None, env: dict[str, str] | None
    ) -> None:
        self.sandbox = sandbox
        self.fake_engine = fake_engine
        self.extra_env = dict(env or {})
        self.log_path = sandbox.root / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def command(self) -> list[str]:
        raise NotImplementedError

    def process_env(self) -> dict[str, str]:
        env = self.sandbox.env(**self.extra_env)
        if self.fake_engine is not None:
            env[FAKE_ENGINE_ENV] = str(self.fake_engine)
        return env

    def spawn(self) -> None:
        with self.log_path.open("ab") as log:  # appended: a restart keeps the earlier lines
            self.proc = subprocess.Popen(
                self.command(),
                env=self.process_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.sandbox.root,
                start_new_session=True,
            )
        self.starts += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"the {self.name} was never started"
        return self.proc.pid

    def log(self) -> str:
        """Everything it logged (all its starts)."""
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def children(self) -> list[int]:
        return children_of(self.pid)

    def engine_pid(self, timeout: float = 30.0) -> int:
        """Its engine process: the multiprocessing child that decodes."""
        return engine_child(self.pid, timeout)

    def kill(self) -> None:
        """SIGKILL this process alone, as a crash would (its children are not told)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> int | None:
        """SIGTERM (or SIGKILL with ``kill``) and wait, SIGKILL if it lingers; its exit code.
        Its children are left to end by themselves (tests check that they do); the
        sandbox's reaper kills what is left at teardown."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


class Server(_Process):
    """``whispercli server run`` on the sandbox's port (or ``port``) and data dir."""

    name = "server"

    def __init__(
        self,
        sandbox: Sandbox,
        *args: str,
        port: int | None = None,
        data_dir: Path | None = None,
        database: str | None = None,
        fake_engine: float | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(sandbox, fake_engine=fake_engine, env=env)
        self.args = (*args, "--database", database) if database else args
        self.database = database
        self.port = port or sandbox.port
        self.data_dir = data_dir or sandbox.data_dir
        if self.port != sandbox.port:
            self.log_path = sandbox.root / f"server-{self.port}.log"
        self.worker: Worker | None = None
        """With a database: the ``worker run`` that runs its jobs, when the test started one."""

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "whispercli", "server", "run",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.data_dir), "--log-level", "info", *self.args,
        ]  # fmt: skip

    def process_env(self) -> dict[str, str]:
        return {**super().process_env(), "WHISPERCLI_URL": self.url}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str:
        return self.sandbox.key()

    @property
    def headers(self) -> dict[str, str]:
        """The Bearer header with the server's key."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def config_dir(self) -> Path:
        return self.sandbox.config_dir

    @property
    def state_dir(self) -> Path:
        return self.sandbox.state_dir

    @property
    def env(self) -> dict[str, str]:
        """The environment for a CLI subprocess that talks to this server with its key file."""
        return self.sandbox.env(WHISPERCLI_URL=self.url)

    def start(self, *, wait: bool = True, timeout: float = START_TIMEOUT) -> Server:
        self.spawn()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until ``/v1/health`` answers 200 with the key (the key file exists by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(requests.RequestException, FileNotFoundError):
                r = requests.get(self.url + "/v1/health", headers=self.headers, timeout=2)
                if r.status_code == 200:
                    return
            time.sleep(0.05)
        self.stop(kill=True)
        raise RuntimeError(f"the server did not become healthy in {timeout} s:\n{self.tail()}")


class Worker(_Process):
    """``whispercli worker run --database DSN`` with the sandbox's env (``data_dir``: its own)."""

    name = "worker"

    def __init__(
        self,
        sandbox: Sandbox,
        database: str,
        *args: str,
        queues: str = "cpu",
        data_dir: Path | None = None,
        fake_engine: float | None = None,
        env: dict[str, str] | None = None,
        name: str = "worker",
    ) -> None:
        self.name = name
        super().__init__(sandbox, fake_engine=fake_engine, env=env)
        self.args = ("--database", database, "--queues", queues, *args)
        self.data_dir = data_dir
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "whispercli", "worker", "run", *self.args]

    def process_env(self) -> dict[str, str]:
        env = super().process_env()
        if self.data_dir is not None:
            env["WHISPERCLI_DATA_DIR"] = str(self.data_dir)
        return env

    def start(self) -> Worker:
        """Start it (a worker answers nothing: its log says when it takes a job)."""
        self.spawn()
        return self


class Workers:
    """The workers of one test on one database, each with its own data dir and log."""

    def __init__(self, sandbox: Sandbox, dsn: str) -> None:
        self.sandbox, self.dsn = sandbox, dsn
        self.started: list[Worker] = []

    def start(self, fake_seconds: float | None = None, queues: str = "cpu", *extra: str) -> Worker:
        """A worker with the real model, or the fake engine taking ``fake_seconds`` a job."""
        n = len(self.started)
        worker = Worker(
            self.sandbox, self.dsn, *extra, queues=queues, name=f"worker-{n}",
            data_dir=self.sandbox.root / f"worker-{n}", fake_engine=fake_seconds, env=FAST_FLEET,
        )  # fmt: skip
        self.started.append(worker.start())
        return worker

    def logs(self) -> str:
        return "\n".join(worker.log() for worker in self.started)

    def stop_all(self) -> list[int | None]:
        return [worker.stop(timeout=20) for worker in self.started]


DEPLOYMENTS = ["sqlite", "postgres"]
"""Where jobs run: the embedded server (SQLite, its own engine), or ``server run --database``
with one ``worker run`` (PostgreSQL)."""


BOTH_BACKENDS = pytest.mark.parametrize("backend", DEPLOYMENTS, indirect=True)
"""Run a test on the embedded server (SQLite, its own engine) and on the PostgreSQL mode (an
API server with ``--database`` and one ``worker run``): the reliability suite's ``live_server``
fixture reads it."""


def deploy(
    kind: str, root: Path, request: pytest.FixtureRequest, fake: float | None
) -> Iterator[tuple[Server, Workers | None]]:
    """The body of a fixture parametrized over ``DEPLOYMENTS``: a server (and on postgres its
    one worker, on a fresh database of the session's cluster) with the real model, or the fake
    engine at ``fake`` seconds a job; stopped and reaped at the end."""
    sandbox = Sandbox(root)
    workers: Workers | None = None
    if kind == "sqlite":
        server = Server(sandbox, fake_engine=fake).start()
    else:
        from whispercli.server.scale.queue import migrate

        dsn = request.getfixturevalue("postgres").new_database(migrate)
        server = Server(sandbox, database=dsn).start()
        workers = Workers(sandbox, dsn)
        workers.start(fake)
    try:
        yield server, workers
    finally:
        if workers is not None:
            workers.stop_all()
        server.stop()
        reap(root)


class ServerFactory:
    """Servers for one test (``start(*flags)``), each in its own sandbox under ``root``;
    ``dirs_from`` shares another server's dirs (a restart after a crash, or a second API
    server behind the same name), on a new port. All stopped and reaped at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[Server] = []

    def start(
        self,
        *args: str,
        dirs_from: Server | None = None,
        fake_engine: float | None = None,
        env: dict[str, str] | None = None,
    ) -> Server:
        if dirs_from is not None:
            sandbox, port = dirs_from.sandbox, free_port()
        else:
            sandbox, port = Sandbox(self.root / f"server-{len(self.started)}"), None
        server = Server(sandbox, *args, port=port, fake_engine=fake_engine, env=env)
        self.started.append(server)
        return server.start()

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()
        for root in {server.sandbox.root for server in self.started}:
            reap(root)


def serve_module(
    tmp_path_factory: pytest.TempPathFactory, *args: str, fake_engine: float | None = None
) -> Iterator[Server]:
    """The body of a module- or session-scoped server fixture: a server in a fresh sandbox,
    stopped and reaped at the end (``yield from serve_module(tmp_path_factory, fake_engine=3)``)."""
    server = Server(Sandbox(tmp_path_factory.mktemp("server")), *args, fake_engine=fake_engine)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        reap(server.sandbox.root)
