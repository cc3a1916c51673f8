"""Submitting and waiting, shared by ``submit``, ``wait`` and ``transcribe``: reuse of a
finished job for the same bytes and options, saving every job, recording its last status."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from whispercli.cli.context import get_client, get_store
from whispercli.cli.output import note
from whispercli.errors import JobFailedError, NotFoundError, WaitTimeoutError

if TYPE_CHECKING:
    from whispercli.cli.progress import Tracker
    from whispercli.client import Job
    from whispercli.protocol import Result
    from whispercli.state import SavedJob

LONG_POLL_QUIET = 30.0
LONG_POLL_DISPLAY = 2.0
"""With a progress display, short long-polls so the server's percent moves on screen (the
engine reports it about every second)."""


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Submitted:
    job: Job
    saved: SavedJob
    reused: bool


def submit_source(
    ctx: typer.Context,
    source: str,
    *,
    model: str,
    tier: str,
    params: dict[str, Any],
    force: bool,
    tracker: Tracker | None = None,
    quiet: bool = False,
) -> Submitted:
    """Upload (a file) and submit, or reuse the saved job for the same bytes and options."""
    from whispercli.state import SavedJob

    client = get_client(ctx)
    store = get_store(ctx)
    file: Path | None = None
    digest = size = None
    if not is_url(source):
        file = Path(source)
        if not file.is_file():
            raise NotFoundError(f"no such file: {source}")
        size = file.stat().st_size
        client.check_upload_size(file, size)  # before hashing: a 5 GB file takes half a minute
        digest = sha256_file(file)
        if not force:
            previous = store.find_reusable(digest, model, params, client.url, tier)
            if previous is not None:
                job = client.job(previous.id, previous.poll_url)
                try:
                    info = job.refresh()
                except NotFoundError:
                    info = None  # the server forgot it (retention): submit again
                if info is not None and info.status not in ("failed", "cancelled"):
                    note(
                        f"{file.name}: reusing job {previous.id} (same file and options; "
                        "--force submits again)",
                        quiet=quiet,
                    )
                    if tracker is not None:
                        tracker.message("reused")
                    return Submitted(job, previous, reused=True)
    job = client.submit(
        source,
        model=model,
        tier=tier,
        on_upload_progress=tracker.upload if tracker else None,
        **params,
    )
    saved = SavedJob(
        id=job.id,
        endpoint=client.url,
        poll_url=job.poll_url,
        model=model,
        tier=tier,
        options=params,
        file=str(file.resolve()) if file else source,
        size=size,
        sha256=digest,
        status=job.info.status if job.info else "accepted",
    )
    store.add(saved)
    if tracker is not None and job.info is not None:
        tracker.job(job.info)
    return Submitted(job, saved, reused=False)


def wait_for(
    ctx: typer.Context,
    job: Job,
    *,
    timeout: float | None,
    tracker: Tracker | None = None,
    display: bool = False,
    timeout_label: str | None = None,
) -> Result:
    """Wait for a job, recording its final status in the jobs file."""
    store = get_store(ctx)
    try:
        result = job.wait(
            timeout=timeout,
            # No display, no progress callback: the client then long-polls until done.
            on_progress=tracker.job if tracker and display else None,
            long_poll=LONG_POLL_DISPLAY if display else LONG_POLL_QUIET,
        )
    except JobFailedError as exc:
        info = job.info
        status = info.status if info else "failed"
        store.update(job.id, status=status, error=exc.message, poll_url=job.poll_url)
        raise
    except WaitTimeoutError as exc:
        if job.info is not None:
            store.update(job.id, status=job.info.status, poll_url=job.poll_url)
            if timeout_label:
                unit = " s" if timeout_label.replace(".", "", 1).isdigit() else ""
                exc.message = f"job {job.id} is still {job.info.status} after {timeout_label}{unit}"
        exc.hint = f"the job keeps running; resume with: whispercli wait {job.id}"
        raise
    store.update(job.id, status="success", error=None, poll_url=job.poll_url)
    return result


def interrupted(job_ids: list[str]) -> typer.Exit:
    """After Ctrl-C: the jobs keep running; say how to resume, exit 130."""
    from whispercli.errors import ExitCode

    if job_ids:
        note(
            f"interrupted; the job keeps running. Resume with: whispercli wait {' '.join(job_ids)}"
        )
    else:
        note("interrupted")
    return typer.Exit(int(ExitCode.INTERRUPTED))
