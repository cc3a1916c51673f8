"""`whispercli status [JOB]` and `whispercli wait [JOB...]`."""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import whispercli.formats as formats
from whispercli.cli import options as o
from whispercli.cli.context import complete_job_ref, get_store, parse_duration, resolve_job
from whispercli.cli.jobflow import report_failures, wait_for
from whispercli.cli.output import data, emit_json, info_dict, stderr_is_tty, warn
from whispercli.cli.progress import Display
from whispercli.errors import Interrupted, JobFailedError, WhisperCliError

if TYPE_CHECKING:
    from whispercli.client import Job
    from whispercli.protocol import Result
    from whispercli.state import SavedJob

JobRef = Annotated[
    str,
    typer.Argument(
        metavar="JOB",
        help="Job id, unique prefix of one, or 'last'.",
        autocompletion=complete_job_ref,
    ),
]
Format = Annotated[str, typer.Option("-f", "--format", help="txt, srt, vtt, tsv or json (stdout).")]


def status(
    ctx: typer.Context,
    job_ref: JobRef = "last",
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Show a job's status (the last job when JOB is omitted); -q prints the status alone."""
    job, saved = resolve_job(ctx, job_ref)
    info = job.refresh()
    now = (info.status, info.error, job.poll_url)
    if saved is not None and (saved.status, saved.error, saved.poll_url) != now:
        get_store(ctx).update(job.id, status=info.status, error=info.error, poll_url=job.poll_url)
    if json_out:
        emit_json(info_dict(info))
        return
    if quiet:
        data(info.status)
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
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="NAME",
            help="Eden AI: this vendor's transcript (default: the first that succeeded).",
        ),
    ] = None,
    max_width: o.MaxLineWidth = None,
    max_lines: o.MaxLineCount = None,
    max_words: o.MaxWordsPerLine = None,
    highlight: o.HighlightWords = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Wait for jobs to finish and print their transcripts, in order (exit 3 if one failed:
    the others still print; its error goes to stderr, or to its entry's "error" with --json)."""
    refs = list(job_refs or []) or _refs_from_stdin() or ["last"]
    if fmt not in formats.FORMATS:
        raise typer.BadParameter(f"choose from {', '.join(formats.FORMATS)}", param_hint="-f")
    written = [] if json_out else [fmt]
    subtitles = o.subtitle_options(max_width, max_lines, max_words, highlight, None, written)
    seconds = parse_duration(timeout) if timeout else None
    deadline = None if seconds is None else time.monotonic() + seconds
    jobs: list[tuple[Job, SavedJob | None]] = []
    outcomes: list[_Outcome] = []
    display_on = stderr_is_tty() and not quiet
    try:
        jobs.extend(resolve_job(ctx, ref) for ref in refs)
        with Display(enabled=display_on) as display:
            for job, saved in jobs:
                outcome = _Outcome(job, _label(job, saved))
                outcomes.append(outcome)
                tracker = display.track(outcome.label)
                remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
                try:
                    outcome.result = wait_for(
                        ctx,
                        job,
                        timeout=remaining,
                        tracker=tracker,
                        display=display_on,
                        timeout_given=seconds,
                    )
                    if provider is not None:
                        from whispercli.backends.edenai import pick_provider

                        outcome.result = pick_provider(outcome.result, provider)
                except WhisperCliError as exc:
                    outcome.failure = exc
                    tracker.message(job.info.status if job.info else "failed", done=True)
    except KeyboardInterrupt:  # one resume command: the jobs not finished, or not looked up yet
        ran = {o.job.id for o in outcomes if o.result or isinstance(o.failure, JobFailedError)}
        left = [j.id for j, _ in jobs if j.id not in ran] + refs[len(jobs) :]
        raise Interrupted(left) from None
    for outcome in outcomes:
        if outcome.result is not None:
            o.check_word_timings(outcome.label, outcome.result, subtitles, written)
    if json_out:
        emit_json([o.to_dict() for o in outcomes])
    else:
        for outcome in outcomes:
            if outcome.result is not None:
                data(formats.render(outcome.result, fmt, subtitles))
    for outcome in outcomes:
        warn(outcome.label, outcome.result)
    _report([o for o in outcomes if o.failure is not None])


@dataclass
class _Outcome:
    job: Job
    label: str
    result: Result | None = None
    failure: WhisperCliError | None = None

    def to_dict(self) -> dict[str, Any]:
        """One job in `wait --json`: the result's fields, or "error" with its message."""
        info = self.job.info
        body: dict[str, Any] = {
            "id": self.job.id,
            "status": info.status if info else None,
            "error": self.failure.message if self.failure else None,
        }
        if self.result is not None:
            body.update(self.result.to_dict())
        return body


def _label(job: Job, saved: SavedJob | None) -> str:
    """What the progress line calls a job: its file's name, else its id."""
    if saved and saved.file and "://" not in saved.file:
        return Path(saved.file).name
    return job.id


def _report(failed: list[_Outcome]) -> None:
    """One failure: its error and hint as any command's. Several: see ``report_failures``."""
    if len(failed) == 1 and failed[0].failure is not None:
        raise failed[0].failure
    report_failures([(o.label, o.job.id, o.failure) for o in failed if o.failure is not None])
