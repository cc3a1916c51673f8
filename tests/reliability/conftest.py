"""Fixtures for the reliability suite; figures are printed at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from figures import FIGURES, dump
from harness import Sandbox, Server, Worker, reap


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "whispercli reliability figures")
        terminalreporter.write_line(dump())


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """Temporary dirs and env; every process tagged with them is killed in teardown."""
    box = Sandbox(tmp_path / "box")
    yield box
    reap(box.root)


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """sqlite (the default), or postgres for tests marked with ``harness.BOTH_BACKENDS``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def live_server(sandbox: Sandbox, backend: str, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A real server on a free port with the sandbox's data dir (stopped in teardown); on the
    postgres backend an API server on a fresh database of the session's cluster plus one
    worker. ``@pytest.mark.server_args("--flag", "value")`` adds flags to ``server run``."""
    marker = request.node.get_closest_marker("server_args")
    args = marker.args if marker else ()
    if backend == "sqlite":
        server = Server(sandbox, *args).start()
        yield server
        server.stop()
        return
    from whispercli.server.scale.queue import migrate

    dsn = request.getfixturevalue("postgres").new_database(migrate)
    server = Server(sandbox, *args, database=dsn).start()
    server.worker = Worker(sandbox, dsn).start()
    yield server
    server.worker.stop()
    server.stop()
