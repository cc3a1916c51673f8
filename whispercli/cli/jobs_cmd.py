"""`whispercli jobs list|show|cancel|rm|prune`: the saved jobs (and their server side)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from whispercli.cli import options as o
from whispercli.cli.context import (
    check_duration,
    client_for,
    complete_job_ref,
    get_client,
    get_store,
    parse_duration,
    resolve_job,
)
from whispercli.cli.output import (
    data,
    emit_json,
    info_dict,
    note,
    same_time_format,
    stderr_is_tty,
    table_header,
)
from whispercli.errors import NotFoundError, WhisperCliError
from whispercli.protocol import TERMINAL_STATUSES
from whispercli.safetext import escape_controls

if TYPE_CHECKING:
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
    return escape_controls("" if value is None else str(value))


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
        _list_remote(ctx, json_out, quiet)
        return
    every = get_store(ctx).newest_first()
    saved = every
    if endpoint is not None:
        wanted = endpoint.rstrip("/")
        saved = [s for s in every if wanted in (s.endpoint.rstrip("/"), s.profile)]
        if not saved and not json_out:
            known = sorted({s.endpoint for s in every} | {s.profile for s in every if s.profile})
            note(
                f"no saved job matches --endpoint {endpoint}"
                + (f" (saved jobs name: {', '.join(known)})" if known else " (no saved jobs)"),
                quiet=quiet,
            )
    if json_out:
        emit_json([{**_public(s), "stale": _stale(s)} for s in saved])
        return
    if quiet:
        for s in saved:
            data(s.id)
        return
    table_header(_HEADER)
    for s in saved:
        status = s.status + ("*" if _stale(s) else "")
        row = (s.id, status, s.model, s.created, s.endpoint, s.file)
        data("\t".join(_cell(v) for v in row))
    if any(_stale(s) for s in saved) and stderr_is_tty():
        note("* as last seen; `whispercli status JOB` asks the server")


def _list_remote(ctx: typer.Context, json_out: bool, quiet: bool) -> None:
    """The server's jobs: the columns and time format of the saved list's first four."""
    infos = get_client(ctx).jobs()
    if json_out:
        emit_json([info_dict(i) for i in infos])
        return
    if not quiet:
        table_header(_HEADER[:4])
    for info in infos:
        row = (info.id, info.status, info.model, same_time_format(info.accepted_at))
        data(info.id if quiet else "\t".join(_cell(v) for v in row))


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
    """``key: value`` lines; a table (the options) as compact JSON, as the jobs file has it."""
    for key, value in rows.items():
        if value not in (None, {}, ""):
            if isinstance(value, dict | list):
                value = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
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
    ids: list[str] = []
    deleted: list[str] = []
    for ref in job_refs:
        job, _ = resolve_job(ctx, ref)
        if purge:
            job.client.delete(job.id)
            deleted.append(job.id)
            note(f"{job.id}: deleted on the server at {job.client.url}", quiet=quiet or json_out)
        ids.append(job.id)
    removed = get_store(ctx).remove(set(ids))
    if json_out:
        emit_json({"removed": removed, **({"deleted": deleted} if purge else {})})
    else:
        note(f"forgot {removed} job(s) here", quiet=quiet)


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            callback=check_duration,
            help="Only jobs created longer ago than this (e.g. 7d, 12h).",
        ),
    ] = "0",
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Forget finished jobs (success, failed, cancelled) from the jobs file.

    A job last seen unfinished (`*` in `jobs list`) is asked about first: it may have
    finished since. A job its server no longer has (deleted or expired) is forgotten too."""
    cutoff = time.time() - parse_duration(older_than)
    store = get_store(ctx)
    old = [s for s in store.all() if _created(s) <= cutoff]
    gone, unanswered = _refresh(ctx, [s for s in old if _stale(s)])
    wanted = {s.id for s in old}
    doomed = {s.id for s in store.all() if s.id in wanted and not _stale(s)} | gone
    removed = store.remove(doomed) if doomed else 0
    if json_out:
        emit_json({"removed": removed, "gone": len(gone), "unanswered": unanswered})
        return
    extra = f" ({len(gone)} no longer on their server)" if gone else ""
    note(f"pruned {removed} finished job(s){extra}", quiet=quiet)
    if unanswered:
        note(f"kept {unanswered} unfinished job(s) whose server did not answer", quiet=quiet)


def _created(saved: SavedJob) -> float:
    try:
        created = datetime.strptime(saved.created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError as exc:
        raise WhisperCliError(f"job {saved.id} has a bad created time") from exc
    return created.timestamp()


def _refresh(ctx: typer.Context, stale: list[SavedJob]) -> tuple[set[str], int]:
    """Ask each job's server for its status now (recorded in the jobs file); returns the ids
    of the jobs a server no longer has, and how many could not be asked."""
    store = get_store(ctx)
    gone: set[str] = set()
    unanswered = 0
    for saved in stale:
        try:
            info = client_for(ctx, saved).job(saved.id, saved.poll_url).refresh()
        except NotFoundError:
            gone.add(saved.id)
            continue
        except WhisperCliError:  # unreachable, a key refused, a profile gone: keep the job
            unanswered += 1
            continue
        store.update(saved.id, status=info.status, error=info.error)
    return gone, unanswered
