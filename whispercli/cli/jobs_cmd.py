"""`whispercli jobs list|show|cancel|rm|prune`: the saved jobs (and their server side)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from whispercli.cli import options as o
from whispercli.cli.context import (
    complete_job_ref,
    get_client,
    get_store,
    parse_duration,
    resolve_job,
)
from whispercli.cli.output import data, emit_json, info_dict, note
from whispercli.errors import WhisperCliError
from whispercli.protocol import TERMINAL_STATUSES

app = typer.Typer(help="List, inspect, cancel and forget saved jobs.", no_args_is_help=True)

JobRefs = Annotated[
    list[str],
    typer.Argument(
        metavar="JOB...",
        help="Job ids, unique prefixes, or 'last'.",
        autocompletion=complete_job_ref,
    ),
]


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    remote: Annotated[
        bool, typer.Option("--remote", help="List the server's jobs instead of saved ones.")
    ] = False,
    json_out: o.Json = False,
) -> None:
    """List saved jobs, newest first (id, status, model, created, file)."""
    if remote:
        infos = get_client(ctx).jobs()
        if json_out:
            emit_json([info_dict(i) for i in infos])
        for info in [] if json_out else infos:
            data(f"{info.id}\t{info.status}\t{info.model or ''}\t{info.accepted_at or ''}")
        return
    saved = list(reversed(get_store(ctx).all()))
    if json_out:
        emit_json([s.to_dict() for s in saved])
        return
    for s in saved:
        data(f"{s.id}\t{s.status}\t{s.model or ''}\t{s.created}\t{s.file or ''}")


@app.command("show")
def show(
    ctx: typer.Context,
    job_ref: Annotated[
        str, typer.Argument(metavar="JOB", autocompletion=complete_job_ref)
    ] = "last",
    json_out: o.Json = False,
) -> None:
    """Show a saved job and what the server says about it now."""
    job, saved = resolve_job(ctx, job_ref)
    info = job.refresh()
    get_store(ctx).update(job.id, status=info.status, error=info.error)
    local = saved.to_dict() if saved else {}
    local.pop("poll_url", None)  # a credential: keep it off the screen
    server = info_dict(info, with_result=json_out)
    if json_out:
        emit_json({"saved": local or None, "server": server})
        return
    rows = {**local, **{k: v for k, v in server.items() if k != "result"}}
    for key, value in rows.items():
        if value not in (None, {}, ""):
            data(f"{key}: {value}")


@app.command("cancel")
def cancel(ctx: typer.Context, job_refs: JobRefs, quiet: o.Quiet = False) -> None:
    """Cancel queued or running jobs."""
    for ref in job_refs:
        job, _ = resolve_job(ctx, ref)
        info = job.cancel()
        get_store(ctx).update(job.id, status=info.status)
        note(f"{job.id}: {info.status}", quiet=quiet)


@app.command("rm")
def rm(
    ctx: typer.Context,
    job_refs: JobRefs,
    purge: Annotated[
        bool, typer.Option("--purge", help="Also delete the job and its data on the server.")
    ] = False,
    quiet: o.Quiet = False,
) -> None:
    """Forget saved jobs (and with --purge delete them on the server)."""
    ids = set()
    for ref in job_refs:
        job, _ = resolve_job(ctx, ref)
        if purge:
            get_client(ctx).delete(job.id)
        ids.add(job.id)
    removed = get_store(ctx).remove(ids)
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
