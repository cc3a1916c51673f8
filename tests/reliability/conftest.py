"""Fixtures for the reliability suite; figures are printed at the end of the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from figures import FIGURES, dump
from harness import Sandbox, Server, reap


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
def live_server(sandbox: Sandbox) -> Iterator[Server]:
    """A real server on a free port with the sandbox's data dir (stopped in teardown)."""
    server = Server(sandbox).start()
    yield server
    server.stop()
