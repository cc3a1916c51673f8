"""`whispercli upload FILE` and `whispercli submit FILE|URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from whispercli.cli import options as o
from whispercli.cli.bundles import expand
from whispercli.cli.context import get_client
from whispercli.cli.jobflow import reuse_note, submit_source
from whispercli.cli.output import data, emit_json, note, stderr_is_tty
from whispercli.cli.progress import Display
from whispercli.cli.results import display_name


def upload(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Audio or video file to upload.", dir_okay=False)],
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Upload FILE and print its upload URL (to give to `submit`)."""
    client = get_client(ctx)
    with Display(enabled=stderr_is_tty() and not quiet) as display:
        url = client.upload(file, on_progress=display.track(file.name).upload)
    if json_out:
        emit_json({"uploadUrl": url, "file": str(file)})
    else:
        data(url)


@expand
def submit(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="FILE|URL", help="A file, or an upload URL.")],
    *,
    job: o.JobOptions,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Submit a transcription job and print its id (saved for `wait`, `status`, `jobs`)."""
    client = get_client(ctx)
    if not client.backend.has_jobs:
        raise client.backend.no_jobs("submit a job to wait for later")
    model, tier = job.model_and_tier(client.settings)
    with Display(enabled=stderr_is_tty() and not quiet) as display:
        done = submit_source(
            ctx,
            source,
            model=model,
            tier=tier,
            job=job,
            tracker=display.track(display_name(source)),
        )
    if done.reused:
        reuse_note(source, done.job.id, quiet=quiet)
    if json_out:
        emit_json({"id": done.job.id, "status": done.saved.status, "reused": done.reused})
        return
    data(done.job.id)
    if not quiet and stderr_is_tty():
        note(f"wait for it with: whispercli wait {done.job.id}")
