"""Fixtures for the reliability suite (its figures are printed at the end of the session by
tests/conftest.py: support/figures.py).

``live_server`` is the module's server for its backend (started on first use), and each test
gets its own client sandbox pointed at it (the server's key copied into the sandbox's config
dir, as on one machine); after the test every job is deleted, so each test starts from an
empty server. ``server_args("--flag", "value")`` adds flags to its ``server run``, and
``engine_args(...)`` to whichever process runs the engine (``server run`` on sqlite, the
worker on postgres). A test marked ``own_server`` (it kills or restarts the server, or reads
its whole log) gets a server of its own, in its sandbox, instead.

Engines: a test (or module) marked ``fake_engine(seconds)`` runs its jobs on the fake engine;
the PostgreSQL backend's worker does too (what runs there is auth, ids, crashes and the
queue), unless the test is marked ``fake_engine(None)`` (its words matter); the rest run the
real model.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import requests
from support.procs import reap
from support.protocol import list_jobs
from support.sandbox import Sandbox
from support.servers import Server, Worker


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """sqlite (the default), or postgres for tests marked with ``BOTH_BACKENDS``."""
    return str(getattr(request, "param", "sqlite"))


PG_FAKE_JOB = 0.5
"""Seconds a job takes on the PostgreSQL backend's worker (the fake engine)."""


def _fake_engine(backend: str, request: pytest.FixtureRequest) -> float | None:
    marker = request.node.get_closest_marker("fake_engine")
    if marker is not None:  # fake_engine(None): the real model on both backends
        return None if marker.args[0] is None else float(marker.args[0])
    return PG_FAKE_JOB if backend == "postgres" else None


@pytest.fixture
def server_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The extra ``server run`` flags of the test's ``server_args`` marker (a module may
    override this fixture: flags known only at run time, such as a proxy's URL)."""
    marker = request.node.get_closest_marker("server_args")
    return tuple(marker.args) if marker else ()


def _engine_args(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The ``engine_args`` marker's flags: for ``server run`` on sqlite, for the worker on
    postgres (whichever process runs the engine)."""
    marker = request.node.get_closest_marker("engine_args")
    return tuple(marker.args) if marker else ()


def _start(
    backend: str,
    sandbox: Sandbox,
    request: pytest.FixtureRequest,
    fake: float | None,
    args: tuple[str, ...],
) -> Server:
    """A real server on the sandbox's port and dirs with ``args``; on the postgres backend an
    API server on a fresh database of the session's cluster plus one worker."""
    engine = _engine_args(request)
    if backend == "sqlite":
        return Server(sandbox, *args, *engine, fake_engine=fake).start()
    from whispercli.server.scale.queue import migrate

    dsn = request.getfixturevalue("postgres").new_database(migrate)
    server = Server(sandbox, *args, database=dsn).start()
    server.worker = Worker(sandbox, dsn, *engine, fake_engine=fake).start()
    return server


def _stop(server: Server) -> None:
    if server.worker is not None:
        server.worker.stop()
    server.stop()


def _delete_every_job(server: Server) -> None:
    jobs = f"{server.url}/v1/async/jobs"
    for job in list_jobs(server.url, server.headers):
        requests.post(f"{jobs}/{job['id']}/cancel", headers=server.headers, timeout=10)
        gone = requests.delete(f"{jobs}/{job['id']}", headers=server.headers, timeout=10)
        if gone.status_code == 409:  # still winding down from the cancel
            requests.get(f"{jobs}/{job['id']}", params={"wait": 5, "until": "done"},
                         headers=server.headers, timeout=20)  # fmt: skip
            gone = requests.delete(f"{jobs}/{job['id']}", headers=server.headers, timeout=10)
        assert gone.status_code in (204, 404), gone.text


@pytest.fixture(scope="module")
def module_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, float | None, tuple[str, ...]], Server]]:
    """The module's servers by backend and engine (started by ``live_server`` on first use)."""
    started: dict[tuple[str, float | None, tuple[str, ...]], Server] = {}
    yield started
    for server in started.values():
        _stop(server)
        reap(server.sandbox.root)


@pytest.fixture
def live_server(
    sandbox: Sandbox,
    backend: str,
    request: pytest.FixtureRequest,
    module_servers: dict[tuple[str, float | None, tuple[str, ...]], Server],
    tmp_path_factory: pytest.TempPathFactory,
    server_args: tuple[str, ...],
) -> Iterator[Server]:
    """The module's server for ``backend`` (and ``server_args``) with this test's sandbox
    pointed at it, or (marked ``own_server``) a server of the test's own on the sandbox's
    port and dirs."""
    fake = _fake_engine(backend, request)
    if request.node.get_closest_marker("own_server"):
        server = _start(backend, sandbox, request, fake, server_args)
        yield server
        _stop(server)
        return
    key = (backend, fake, server_args + _engine_args(request))
    server = module_servers.get(key)
    if server is None:
        box = Sandbox(tmp_path_factory.mktemp(f"{backend}-server"))
        server = module_servers[key] = _start(backend, box, request, fake, server_args)
    sandbox.port = server.port
    shutil.copy2(server.sandbox.key_file, sandbox.key_file)
    yield server
    _delete_every_job(server)
