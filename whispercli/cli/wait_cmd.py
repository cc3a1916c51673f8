"""`whispercli status [JOB]` and `whispercli wait [JOB...]`."""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

import whispercli.cli.results as results
from whispercli.cli import options as o
from whispercli.cli.bundles import expand
from whispercli.cli.context import complete_job_ref, get_store, parse_duration, resolve_job
from whispercli.cli.jobflow import report_failures, wait_for
from whispercli.cli.output import data, emit_json, info_dict, stderr_is_tty, warn
from whispercli.cli.progress import Display
from whispercli.cli.results import Destination
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
    if info.waiting and not info.terminal:
        line += f"\t{info.waiting}"
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


@expand
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
    *,
    timeout: o.Timeout = None,
    out: o.OutputOptions,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="NAME",
            help="Eden AI: this vendor's transcript (default: the first that succeeded).",
        ),
    ] = None,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Wait for jobs to finish and print their transcripts in order, or write them under -o
    (exit 3 if one failed: the others still print; its error goes to stderr, or to its
    entry's "error" with --json)."""
    refs = list(job_refs or []) or _refs_from_stdin() or ["last"]
    chosen = results.chosen_formats(out, json_out=json_out)
    shown = results.written(out, chosen, json_out=json_out)
    subtitles = out.subtitles(None, shown)
    seconds = parse_duration(timeout) if timeout else None
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        outcomes = [_outcome(job, saved) for job, saved in (resolve_job(ctx, r) for r in refs)]
    except KeyboardInterrupt:
        raise Interrupted(refs, results.wait_command(refs, out)) from None
    results.check_destinations(out, [x.place for x in outcomes], chosen, json_out=json_out)
    display_on = stderr_is_tty() and not quiet
    try:
        with Display(enabled=display_on) as display:
            for outcome in outcomes:
                tracker = display.track(outcome.name)
                remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
                try:
                    result = wait_for(
                        ctx,
                        outcome.job,
                        timeout=remaining,
                        tracker=tracker,
                        display=display_on,
                        timeout_given=seconds,
                    )
                    if provider is not None:
                        from whispercli.backends.edenai import pick_provider

                        result = pick_provider(result, provider)
                    results.check_word_timings(outcome.name, result, subtitles, shown)
                    results.write(out, outcome.place, result, chosen, subtitles)
                    outcome.result = result
                except WhisperCliError as exc:
                    outcome.failure = exc
                    info = outcome.job.info
                    tracker.message(info.status if info else "failed", done=True)
    except KeyboardInterrupt:  # one resume command: the jobs not finished
        left = [x.job.id for x in outcomes if not x.result and not _ended(x)]
        raise Interrupted(left, results.wait_command(left, out)) from None
    if json_out:
        emit_json([x.to_dict() for x in outcomes])
    else:
        results.print_all(out, [(x.place, x.result) for x in outcomes], chosen, subtitles)
    for outcome in outcomes:
        warn(outcome.name, outcome.result)
    _report([x for x in outcomes if x.failure is not None])


def _ended(outcome: _Outcome) -> bool:
    return isinstance(outcome.failure, JobFailedError)


@dataclass
class _Outcome:
    job: Job
    name: str
    place: Destination
    """``==> ID <==`` on stdout; under -o, files named after the job's input."""
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


def _outcome(job: Job, saved: SavedJob | None) -> _Outcome:
    """A job to wait for: named after its input (else its id) on the progress line, headed
    ``==> ID <==`` on stdout, its files under -o named after its input (else its id)."""
    if saved is None or not saved.file:
        return _Outcome(job, job.id, Destination(job.id, job.id))
    name = results.display_name(saved.file)
    return _Outcome(job, name, Destination(job.id, results.stem_of(saved.file)))


def _report(failed: list[_Outcome]) -> None:
    """One failure: its error and hint as any command's. Several: see ``report_failures``."""
    if len(failed) == 1 and failed[0].failure is not None:
        raise failed[0].failure
    report_failures([(o.name, o.job.id, o.failure) for o in failed if o.failure is not None])
