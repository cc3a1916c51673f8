"""Control characters from elsewhere never reach a log line raw (issue 20, item 7)."""

from __future__ import annotations

import logging
import sys

from whispercli.safetext import escape_controls
from whispercli.server.logs import FORMAT, SafeFormatter


def test_control_characters_are_escaped_and_printable_text_is_kept() -> None:
    assert escape_controls("plain ünïcödé 名前 ✓") == "plain ünïcödé 名前 ✓"
    hostile = "job\x1b]0;title\x07 \x1b[2J\x00\r\nfake line\u202egnp.exe\x9b"
    escaped = escape_controls(hostile)
    assert escaped == "job\\x1b]0;title\\x07 \\x1b[2J\\x00\\r\\nfake line\\u202egnp.exe\\x9b"
    assert escape_controls("a\nb\tc", keep="\n") == "a\nb\\tc"


def test_a_log_line_is_one_line_and_a_traceback_keeps_its_lines() -> None:
    formatter = SafeFormatter(FORMAT)
    path = "/\x1b]0;owned\x07/\x00\nWARNING forged line"
    record = logging.LogRecord(
        "whispercli.server", logging.INFO, __file__, 1, "GET %s 401", (path,), None
    )
    line = formatter.format(record)
    assert "\n" not in line and "\x1b" not in line and "\x00" not in line
    assert "\\x1b]0;owned\\x07/\\x00\\nWARNING forged line" in line
    try:
        raise ValueError("boom \x1b[2J")
    except ValueError:
        info = sys.exc_info()
    failed = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), info)
    text = formatter.format(failed)
    assert text.count("\n") >= 3 and "\x1b" not in text and "boom \\x1b[2J" in text
