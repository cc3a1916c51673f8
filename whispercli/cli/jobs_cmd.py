"""`whispercli jobs list|show|cancel|rm|prune`: the saved jobs (and their server side)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from whispercli.cli import options as o
from whispercli.cli.context import (
    complete_job_ref,
    get_client,
    get_store,
    parse_duration,
    resolve_job,
)
from whispercli.cli.output import data, emit_json, info_dict, note, stderr_is_tty
from whispercli.errors import NotFoundError, WhisperCliError
from whispercli.protocol import TERMINAL_STATUSES

if TYPE_CHECKING:
    from whispercli.protocol import JobInfo
    from whispercli.state import SavedJob

app = typer.Typer(help="List, inspect, cancel and forget saved jobs.", no_args_is_help=True)

JobRefs = Annotated[
    list[str],
    typer.Argument(
        metavar="JOB...",
        help="Job ids, unique prefixes, or 'last'.",
        autocompletion=complete_job_ref,
    ),
]


def _cell(value: object) -> str:
    """A table cell on one line: control characters (newline, tab, ...) escaped."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _stale(saved: SavedJob) -> bool:
    """A saved status that may have moved on since (only finished statuses are final)."""
    return saved.status not in TERMINAL_STATUSES


_HEADER = ("ID", "STATUS", "MODEL", "CREATED", "ENDPOINT", "FILE")


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    remote: Annotated[
        bool, typer.Option("--remote", help="List the server's jobs instead of saved ones.")
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint", help="Only jobs submitted to this URL or with this config profile."
        ),
    ] = None,
    json_out: o.Json = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Print the ids only.")] = False,
) -> None:
    """List saved jobs, newest first (id, status, model, created, endpoint, file).

    A status that is not final is the one last seen, marked with *: `whispercli status JOB`
    asks the server."""
    if remote:
        infos = get_client(ctx).jobs()
        if json_out:
            emit_json([info_dict(i) for i in infos])
        for info in [] if json_out else infos:
            data(info.id if quiet else "\t".join(_cell(v) for v in _remote_row(info)))
        return
    saved = get_store(ctx).newest_first()
    if endpoint is not None:
        wanted = endpoint.rstrip("/")
        saved = [s for s in saved if wanted in (s.endpoint.rstrip("/"), s.profile)]
    if json_out:
        emit_json([{**_public(s), "stale": _stale(s)} for s in saved])
        return
    if quiet:
        for s in saved:
            data(s.id)
        return
    if sys.stdout.isatty():
        data("\t".join(_HEADER))
    for s in saved:
        status = s.status + ("*" if _stale(s) else "")
        row = (s.id, status, s.model, s.created, s.endpoint, s.file)
        data("\t".join(_cell(v) for v in row))
    if any(_stale(s) for s in saved) and stderr_is_tty():
        note("* as last seen; `whispercli status JOB` asks the server")


def _remote_row(info: JobInfo) -> tuple[str | None, ...]:
    return (info.id, info.status, info.model, info.accepted_at)


def _public(saved: SavedJob) -> dict[str, object]:
    """A saved job as printed: the poll URL (a credential) stays out."""
    body = saved.to_dict()
    body.pop("poll_url", None)
    return body


@app.command("show")
def show(
    ctx: typer.Context,
    job_ref: Annotated[
        str, typer.Argument(metavar="JOB", autocompletion=complete_job_ref)
    ] = "last",
    json_out: o.Json = False,
) -> None:
    """Show a saved job and what the server says about it now (or that it no longer has it)."""
    job, saved = resolve_job(ctx, job_ref)
    local = _public(saved) if saved else {}
    try:
        info = job.refresh()
    except NotFoundError:
        if saved is None:
            raise
        gone = f"the server at {job.client.url} no longer has job {job.id} (deleted or expired)"
        if json_out:
            emit_json({"saved": local, "server": None, "note": gone})
        else:
            _rows(local)
            note(gone)
        return
    get_store(ctx).update(job.id, status=info.status, error=info.error)
    server = info_dict(info, with_result=json_out)
    if json_out:
        emit_json({"saved": local or None, "server": server})
        return
    _rows({**local, **{k: v for k, v in server.items() if k != "result"}})


def _rows(rows: dict[str, object]) -> None:
    for key, value in rows.items():
        if value not in (None, {}, ""):
            data(f"{key}: {_cell(value)}")


@app.command("cancel")
def cancel(
    ctx: typer.Context, job_refs: JobRefs, json_out: o.Json = False, quiet: o.Quiet = False
) -> None:
    """Cancel queued or running jobs (a job that already finished is left as it is)."""
    outcomes = []
    for ref in job_refs:
        job, _ = resolve_job(ctx, ref)
        try:
            info = job.cancel()
        except WhisperCliError as exc:
            if exc.status != 409:
                raise
            info = job.refresh()
            said = f"already {info.status}, nothing to cancel"
        else:
            said = "cancelled" if info.status == "cancelled" else "cancel requested"
        get_store(ctx).update(job.id, status=info.status)
        outcomes.append({"id": job.id, "status": info.status, "result": said})
        if not json_out:
            note(f"{job.id}: {said}", quiet=quiet)
    if json_out:
        emit_json(outcomes)


@app.command("rm")
def rm(
    ctx: typer.Context,
    job_refs: JobRefs,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the job and its data on the server.")
    ] = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Forget saved jobs (and with --purge delete them on the server)."""
    ids = set()
    for ref in job_refs:
        job, _ = resolve_job(ctx, ref)
        if purge:
            job.client.delete(job.id)
        ids.add(job.id)
    removed = get_store(ctx).remove(ids)
    if json_out:
        emit_json({"removed": removed})
    else:
        note(f"forgot {removed} job(s)", quiet=quiet)


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option("--older-than", help="Only jobs created longer ago than this (e.g. 7d, 12h)."),
    ] = "0",
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Forget finished jobs (success, failed, cancelled) from the jobs file."""
    cutoff = time.time() - parse_duration(older_than)
    store = get_store(ctx)
    doomed = set()
    for saved in store.all():
        try:
            created = datetime.strptime(saved.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError as exc:
            raise WhisperCliError(f"job {saved.id} has a bad created time") from exc
        if saved.status in TERMINAL_STATUSES and created.timestamp() <= cutoff:
            doomed.add(saved.id)
    removed = store.remove(doomed) if doomed else 0
    if json_out:
        emit_json({"removed": removed})
    else:
        note(f"pruned {removed} finished job(s)", quiet=quiet)
