"""Where things print. stdout carries data only (transcripts, ids, JSON); notes, warnings and
progress go to stderr, and decoration only when stderr is a terminal and NO_COLOR is unset."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from whispercli.errors import ExitCode
from whispercli.protocol import JobInfo, Result


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def data(text: str) -> None:
    """Write data to stdout (adds the trailing newline when missing)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


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
    """One JSON document on stdout."""
    data(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def note(message: str, *, quiet: bool = False) -> None:
    """A human note on stderr (suppressed by -q)."""
    if not quiet:
        print(f"whispercli: {message}", file=sys.stderr, flush=True)


def warn(source: str, result: Result | None) -> None:
    """The result's warnings on stderr (never suppressed: they say the transcript may be wrong)."""
    for warning in result.warnings if result is not None else ():
        print(f"whispercli: warning: {source}: {warning}", file=sys.stderr, flush=True)


def error(message: str) -> None:
    print(f"whispercli: error: {message}", file=sys.stderr, flush=True)


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
