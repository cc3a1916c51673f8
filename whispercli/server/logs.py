"""The server's log lines (``server run``, ``worker run``): one format, and no control
character from a request or a peer written raw (see :mod:`whispercli.safetext`)."""

from __future__ import annotations

import logging
from types import TracebackType

from whispercli.safetext import escape_controls

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class SafeFormatter(logging.Formatter):
    """Escapes every control character of a line (ESC, BEL, NUL, a line break from a request
    path...); a traceback keeps its line breaks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: ExcInfo | tuple[None, None, None]) -> str:
        return escape_controls(super().formatException(ei), keep="\n")

    def formatStack(self, stack_info: str) -> str:
        return escape_controls(super().formatStack(stack_info), keep="\n")


def configure(level: str) -> None:
    """Log to stderr at ``level`` through :class:`SafeFormatter` (uvicorn's lines too)."""
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
