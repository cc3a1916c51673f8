"""Fixtures for the reliability suite; figures are printed at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from figures import FIGURES, dump
from support.sandbox import Sandbox
from support.servers import Server, Worker


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "whispercli reliability figures")
        terminalreporter.write_line(dump())


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """sqlite (the default), or postgres for tests marked with ``BOTH_BACKENDS``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def live_server(sandbox: Sandbox, backend: str, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A real server on the sandbox's port and dirs (stopped in teardown); on the postgres
    backend an API server on a fresh database of the session's cluster plus one worker."""
    if backend == "sqlite":
        server = Server(sandbox).start()
        yield server
        server.stop()
        return
    from whispercli.server.scale.queue import migrate

    dsn = request.getfixturevalue("postgres").new_database(migrate)
    server = Server(sandbox, database=dsn).start()
    server.worker = Worker(sandbox, dsn).start()
    yield server
    server.worker.stop()
    server.stop()
