"""`whispercli upload FILE` and `whispercli submit FILE|URL`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from whispercli.cli import options as o
from whispercli.cli.context import get_client
from whispercli.cli.jobflow import submit_source
from whispercli.cli.output import data, emit_json, note, stderr_is_tty
from whispercli.cli.progress import Display


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


def submit(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(metavar="FILE|URL", help="A file, or an upload URL.")],
    model: o.Model = None,
    tier: o.Tier = None,
    language: o.Language = None,
    task: o.Task = None,
    beam_size: o.BeamSize = None,
    best_of: o.BestOf = None,
    temperature: o.Temperature = None,
    patience: o.Patience = None,
    initial_prompt: o.InitialPrompt = None,
    hotwords: o.Hotwords = None,
    condition_on_previous_text: o.ConditionOnPrevious = None,
    word_timestamps: o.WordTimestamps = None,
    vad_filter: o.VadFilter = None,
    speed: o.Speed = None,
    provider: o.Providers = None,
    webhook: o.Webhook = None,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
) -> None:
    """Submit a transcription job and print its id (saved for `wait`, `status`, `jobs`)."""
    params = o.whisper_params(
        language,
        task,
        beam_size,
        best_of,
        temperature,
        patience,
        initial_prompt,
        condition_on_previous_text,
        word_timestamps,
        vad_filter,
        speed,
        hotwords,
    )
    client = get_client(ctx)
    if not client.backend.has_jobs:
        raise client.backend.no_jobs("submit a job to wait for later")
    settings = client.settings
    model_name, tier_name = o.model_and_tier(settings.model, settings.tier, model, tier)
    with Display(enabled=stderr_is_tty() and not quiet) as display:
        done = submit_source(
            ctx,
            source,
            model=model_name,
            tier=tier_name,
            params=params,
            force=force,
            tracker=display.track(Path(source).name),
            quiet=quiet,
            providers=o.providers_of(provider),
            webhook=webhook,
        )
    if json_out:
        emit_json({"id": done.job.id, "status": done.saved.status, "reused": done.reused})
        return
    data(done.job.id)
    if not quiet and stderr_is_tty():
        note(f"wait for it with: whispercli wait {done.job.id}")
