"""Fixtures for the reliability suite; figures are printed at the end of the session."""

from __future__ import annotations

import pytest
from figures import FIGURES, dump


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "whispercli reliability figures")
        terminalreporter.write_line(dump())
