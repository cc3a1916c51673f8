"""Where things print. stdout carries data only (transcripts, ids, JSON); notes, warnings and
progress go to stderr, and decoration only when stderr is a terminal and NO_COLOR is unset.

Text from a server (errors, warnings, transcripts) may carry terminal control sequences (a
window title, a screen clear, an OSC 52 clipboard write, a fake hyperlink): everything printed
on stderr, and data printed to a terminal, has them escaped (:func:`terminal_safe`); data
written to a pipe or a file stays byte for byte what the server sent.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from whispercli.errors import ExitCode
from whispercli.protocol import JobInfo, Result

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 control characters but newline and tab, DEL, and the bidirectional overrides."""


def terminal_safe(text: str) -> str:
    """``text`` with the characters a terminal would act on shown as escapes (``\\x1b``)."""
    return _CONTROLS.sub(lambda m: repr(m.group())[1:-1], text)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def data(text: str) -> None:
    """Write data to stdout (adds the trailing newline when missing); escaped on a terminal."""
    if sys.stdout.isatty():
        text = terminal_safe(text)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def say(line: str) -> None:
    """One line on stderr, control characters escaped: every message goes through here."""
    print(terminal_safe(line), file=sys.stderr, flush=True)


def table_header(columns: Sequence[str]) -> None:
    """A table's header line on stdout, only when stdout is a terminal (a pipe gets rows)."""
    if sys.stdout.isatty():
        data("\t".join(columns))


def same_time_format(stamp: str | None) -> str | None:
    """A server's ISO 8601 time (``2026-01-02T03:04:05.123+00:00``) as the jobs file writes
    times (``2026-01-02T03:04:05Z``, UTC); anything unreadable as it is."""
    from datetime import UTC, datetime

    if not stamp:
        return stamp
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit_json(value: Any) -> None:
    """One JSON document on stdout (control characters as ``\\u`` escapes: still valid JSON,
    and nothing a terminal would act on)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    data(_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


def note(message: str, *, quiet: bool = False) -> None:
    """A human note on stderr (suppressed by -q)."""
    if not quiet:
        say(f"whispercli: {message}")


def warn(source: str, result: Result | None) -> None:
    """The result's warnings on stderr (never suppressed: they say the transcript may be wrong)."""
    for warning in result.warnings if result is not None else ():
        say(f"whispercli: warning: {source}: {warning}")


def error(message: str, hint: str | None = None) -> None:
    say(f"whispercli: error: {message}")
    if hint:
        say(f"whispercli: hint: {hint}")


def exit_interrupted(job_ids: Sequence[str] = (), command: str | None = None) -> NoReturn:
    """After Ctrl-C, at whatever moment: say so (and how to resume the jobs left running, which
    keep running: ``command``, else ``whispercli wait IDS``), exit 130."""
    if job_ids:
        running = "the job keeps running" if len(job_ids) == 1 else "the jobs keep running"
        resume = command or f"whispercli wait {' '.join(job_ids)}"
        note(f"interrupted; {running}. Resume with: {resume}")
    else:
        note("interrupted")
    sys.exit(int(ExitCode.INTERRUPTED))


def info_dict(info: JobInfo, *, with_result: bool = False) -> dict[str, Any]:
    """A job as the CLI's --json shows it (the poll URL, a credential, stays out)."""
    out: dict[str, Any] = {
        "id": info.id,
        "status": info.status,
        "model": info.model,
        "progress": info.progress,
        "acceptedAt": info.accepted_at,
        "startedAt": info.started_at,
        "completedAt": info.completed_at,
    }
    if info.error:
        out["error"] = info.error
    if info.waiting and not info.terminal:
        out["waiting"] = info.waiting
    if with_result and info.result is not None:
        out["result"] = info.result.to_dict()
    return out
