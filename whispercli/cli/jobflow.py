"""Submitting and waiting, shared by ``submit``, ``wait`` and ``transcribe``: reuse of a
finished job for the same bytes and options, saving every job, recording its last status."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from whispercli.cli.context import get_client, get_store
from whispercli.cli.output import error, note
from whispercli.errors import (
    JobFailedError,
    NotFoundError,
    UsageError,
    WaitTimeoutError,
    WhisperCliError,
    seconds_text,
)
from whispercli.protocol import is_http_url

if TYPE_CHECKING:
    from collections.abc import Callable

    from whispercli.backends.base import JobCallback
    from whispercli.cli.options import JobOptions
    from whispercli.cli.progress import Tracker
    from whispercli.client import Client, Job
    from whispercli.protocol import JobInfo, Result
    from whispercli.state import SavedJob

LONG_POLL_QUIET = 30.0
LONG_POLL_DISPLAY = 2.0
"""With a progress display, short long-polls so the server's percent moves on screen (the
engine reports it about every second)."""
LONG_POLL_LIVE = 1.0
"""With the transcript shown as it is decoded (cli/live.py): the partial segments each second."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_state_dir() -> None:
    """The jobs file must be writable before anything is uploaded: a job whose id cannot be
    saved could not be waited for later."""
    import whispercli.paths as paths
    from whispercli.state import unusable_dir

    folder = paths.state_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unusable_dir(folder, exc.strerror or type(exc).__name__) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise unusable_dir(folder, "not writable")


@dataclass
class Submitted:
    job: Job
    saved: SavedJob
    reused: bool


def _local_file(
    client: Client, source: str, stack: contextlib.ExitStack, tracker: Tracker | None
) -> Path | None:
    """The file to upload: the path given, or a download of a URL the endpoint cannot take
    (into a temporary folder that ``stack`` removes); None for a URL passed on as it is."""
    if is_http_url(source):
        if not client.must_download(source):
            return None
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="whispercli-")))
        return client.download(source, folder, tracker.download if tracker else None)
    file = Path(source)
    if file.is_dir():
        raise UsageError(
            f"{source} is a directory: submit takes one file",
            hint=f"to transcribe every file in it: whispercli transcribe {source}",
        )
    if not file.is_file():
        raise NotFoundError(f"no such file: {source}")
    return file


def reuse_note(label: str, job_id: str, *, quiet: bool = False) -> None:
    note(
        f"{label}: reusing job {job_id} (same file and options; --force submits again)", quiet=quiet
    )


def submit_source(
    ctx: typer.Context,
    source: str,
    *,
    model: str | None,
    tier: str,
    job: JobOptions,
    tracker: Tracker | None = None,
    on_progress: JobCallback | None = None,
    on_submitted: Callable[[str], None] | None = None,
) -> Submitted:
    """Upload (a file) and submit, or reuse the saved job for the same bytes and options
    (``providers``, Eden AI's vendors, count among the options; never with a ``webhook``: a
    reused job would not call it). ``model`` None: the backend's default. What is saved is
    what the backend says the job runs (Eden AI: its providers, ``whisper/small``). A backend
    without job ids (OpenAI's) answers the transcript in its submit, giving ``on_progress`` the
    partial segments; nothing is saved then. ``on_submitted`` gets the new job's id before it
    is saved: whoever reads the saved jobs after a Ctrl-C already knows it."""
    from whispercli.state import SavedJob

    check_state_dir()
    client = get_client(ctx)
    params = job.whisper_params()
    plan = client.prepare(model, params, job.providers(), job.webhook)
    store = get_store(ctx)
    backend = client.settings.backend
    options = {**params, "providers": plan.providers} if plan.providers else params
    keeps = client.backend.has_jobs
    with contextlib.ExitStack() as stack:
        file = _local_file(client, source, stack, tracker)
        digest = size = None
        if file is not None:
            size = file.stat().st_size
            if size == 0:
                raise UsageError(f"{source} is empty (0 bytes): there is no audio to send")
            client.check_upload_size(file, size)  # before hashing: a 5 GB file takes half a minute
            digest = sha256_file(file) if keeps else None
        if digest is not None and not job.force and job.webhook is None:
            reused = _reusable(ctx, client, digest, plan.model, options, tier)
            if reused is not None:
                if tracker is not None:
                    tracker.message("reused")
                return reused
        handle = client.submit(
            source if file is None else file,
            model=model,
            tier=tier,
            on_upload_progress=tracker.upload if tracker else None,
            providers=job.providers(),
            webhook=job.webhook,
            on_progress=on_progress,
            **params,
        )
    if on_submitted is not None:
        on_submitted(handle.id)
    saved = SavedJob(
        id=handle.id,
        endpoint=client.url,
        backend=backend,
        poll_url=handle.poll_url,
        profile=client.settings.profile,
        model=plan.model,
        tier=tier,
        options=options,
        file=source if file is None or is_http_url(source) else str(file.resolve()),
        size=size,
        sha256=digest,
        status=handle.info.status if handle.info else "accepted",
    )
    if keeps:
        store.add(saved)
    if tracker is not None and handle.info is not None:
        tracker.job(handle.info)
    return Submitted(handle, saved, reused=False)


def _reusable(
    ctx: typer.Context,
    client: Client,
    digest: str,
    model: str | None,
    options: dict[str, Any],
    tier: str,
) -> Submitted | None:
    """The saved job for the same bytes, model, options, endpoint and tier, if the server
    still has it and it did not fail."""
    store = get_store(ctx)
    previous = store.find_reusable(
        digest, model, options, client.url, tier, client.settings.backend
    )
    if previous is None:
        return None
    handle = client.job(previous.id, previous.poll_url)
    try:
        info = handle.refresh()
    except NotFoundError:
        return None  # the server forgot it (retention): submit again
    if info.status in ("failed", "cancelled"):
        return None
    store.mark_last(previous.id)
    return Submitted(handle, previous, reused=True)


def wait_for(
    ctx: typer.Context,
    job: Job,
    *,
    timeout: float | None,
    tracker: Tracker | None = None,
    display: bool = False,
    timeout_given: float | None = None,
    on_progress: JobCallback | None = None,
) -> Result:
    """Wait for a job, recording its final status in the jobs file. ``timeout_given`` is the
    --timeout a timeout message names when ``timeout`` is what is left of it; ``on_progress``
    (the live transcript) gets every poll's answer too."""
    store = get_store(ctx)
    callbacks = [c for c in (tracker.job if tracker and display else None, on_progress) if c]

    def report(info: JobInfo) -> None:
        for callback in callbacks:
            callback(info)

    long_poll = LONG_POLL_LIVE if on_progress else LONG_POLL_DISPLAY if display else LONG_POLL_QUIET
    try:
        result = job.wait(
            timeout=timeout,
            # No callback: the client then long-polls until done.
            on_progress=report if callbacks else None,
            long_poll=long_poll,
        )
    except JobFailedError as exc:
        info = job.info
        status = info.status if info else "failed"
        store.update(job.id, status=status, error=exc.message, poll_url=job.poll_url)
        raise
    except WaitTimeoutError as exc:
        if job.info is not None:
            store.update(job.id, status=job.info.status, poll_url=job.poll_url)
            if timeout_given is not None:
                waited = seconds_text(timeout_given)
                exc.message = f"job {job.id} is still {job.info.status} after {waited}"
        exc.hint = f"the job keeps running; resume with: whispercli wait {job.id}"
        raise
    store.update(job.id, status="success", error=None, poll_url=job.poll_url)
    return result


def report_failures(failures: list[tuple[str, str | None, WhisperCliError]]) -> None:
    """Several jobs' failures, as (label, job id, error): an error line each, one resume
    command for the jobs still running (timed out), exit with the first failure's code."""
    if not failures:
        return
    for label, _, failure in failures:
        error(f"{label}: {failure.message}")
    running = [job_id for _, job_id, f in failures if job_id and isinstance(f, WaitTimeoutError)]
    if running:
        note(f"hint: the jobs keep running; resume with: whispercli wait {' '.join(running)}")
    raise typer.Exit(int(failures[0][2].exit_code))
