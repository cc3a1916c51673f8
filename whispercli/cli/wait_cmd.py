"""`whispercli status [JOB]` and `whispercli wait [JOB...]`."""

from __future__ import annotations

import os
import stat
import sys
import time
from typing import Annotated

import typer

from whispercli import formats
from whispercli.cli import options as o
from whispercli.cli.context import complete_job_ref, get_store, parse_duration, resolve_job
from whispercli.cli.jobflow import interrupted, wait_for
from whispercli.cli.output import data, emit_json, info_dict, stderr_is_tty, warn
from whispercli.cli.progress import Display

JobRef = Annotated[
    str,
    typer.Argument(
        help="Job id, unique prefix of one, or 'last'.", autocompletion=complete_job_ref
    ),
]
Format = Annotated[str, typer.Option("-f", "--format", help="txt, srt, vtt, tsv or json (stdout).")]


def status(
    ctx: typer.Context,
    job_ref: JobRef = "last",
    json_out: o.Json = False,
) -> None:
    """Show a job's status (the last submitted job when JOB is omitted)."""
    job, saved = resolve_job(ctx, job_ref)
    info = job.refresh()
    now = (info.status, info.error, job.poll_url)
    if saved is not None and (saved.status, saved.error, saved.poll_url) != now:
        get_store(ctx).update(job.id, status=info.status, error=info.error, poll_url=job.poll_url)
    if json_out:
        emit_json(info_dict(info))
        return
    line = f"{info.id}\t{info.status}"
    if info.progress is not None and not info.terminal:
        line += f"\t{info.progress * 100:.0f}%"
    if info.error:
        line += f"\t{info.error}"
    data(line)


def _refs_from_stdin() -> list[str]:
    """Ids piped in (`submit -q a.wav | whispercli wait`); never blocks on a terminal."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return []
    if not (stat.S_ISFIFO(mode) or stat.S_ISREG(mode)):
        return []
    return sys.stdin.read().split()


def wait(
    ctx: typer.Context,
    job_refs: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB]...",
            help="Jobs to wait for (ids, prefixes, 'last'; read from stdin when piped).",
            autocompletion=complete_job_ref,
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option("--timeout", help="Give up after this long (90, 90s, 30m, 1h); exit 7."),
    ] = None,
    fmt: Format = "txt",
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Wait for jobs to finish and print their transcripts (exit 3 if one failed)."""
    refs = list(job_refs or []) or _refs_from_stdin() or ["last"]
    if fmt not in formats.FORMATS:
        raise typer.BadParameter(f"choose from {', '.join(formats.FORMATS)}", param_hint="-f")
    seconds = parse_duration(timeout) if timeout else None
    deadline = None if seconds is None else time.monotonic() + seconds
    jobs = [resolve_job(ctx, ref)[0] for ref in refs]
    results = []
    pending = [j.id for j in jobs]
    display_on = stderr_is_tty() and not quiet
    try:
        with Display(enabled=display_on) as display:
            for job in jobs:
                remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
                result = wait_for(
                    ctx,
                    job,
                    timeout=remaining,
                    tracker=display.track(job.id),
                    display=display_on,
                    timeout_label=timeout,
                )
                results.append((job, result))
                pending.remove(job.id)
    except KeyboardInterrupt:
        raise interrupted(pending) from None
    for job, result in results:
        warn(job.id, result)
    if json_out:
        emit_json([{"id": job.id, **result.to_dict()} for job, result in results])
        return
    for _job, result in results:
        data(formats.render(result, fmt))
