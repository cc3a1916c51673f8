"""The job service: every rule about uploads and jobs, between the routers and storage.

Routers (whispercli/server/api/) translate a protocol's HTTP shapes into calls of
:class:`JobService` and its results back into bodies; they never touch the store, the blobs
or the notifier. The service knows no HTTP: it raises
:class:`~whispercli.server.jobs.errors.ServiceError` with a code from the one error table.

Storage calls are blocking (short SQL statements) and run in a worker thread, so a slow
backend never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from whispercli.protocol import (
    MAX_LONG_POLL_SECONDS,
    QUEUED_STATUSES,
    TIERS,
    UPLOAD_URL_PATH,
    Status,
)
from whispercli.server.jobs import models
from whispercli.server.jobs.errors import ServiceError
from whispercli.server.jobs.params import ParamError, check_model_can, validate_input
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.blobs import BlobStore, BlobTooLarge, StorageFull
from whispercli.server.storage.notify import Notifier
from whispercli.server.storage.store import JobRecord, Store
from whispercli.server.webhooks import guard
from whispercli.server.webhooks.outbound import DownloadFailed, Outbound, OutboundBusy
from whispercli.server.webhooks.signatures import new_message_id

if TYPE_CHECKING:
    from whispercli.server.scale.fleet import Fleet, WorkerInfo

TIER_QUEUES = {"cpuflex": "cpu", "gpuflex": "gpu"}
"""The protocol's ``serviceTier`` -> the queue whose workers run the job."""
_EXTENSION_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")
RETRY_AFTER_SECONDS = 10
OUTBOUND_RETRY_SECONDS = 5
LONG_POLL_RECHECK_SECONDS = 5.0
"""A long-poll re-reads the job at least this often, notification or not."""
DISCONNECT_CHECK_SECONDS = 1.0
"""How often a waiting request (a long-poll, a held OpenAI or OctoAI request) looks whether its
client went away, between the job's re-reads."""

log = logging.getLogger("whispercli.server")


async def _notified(
    event: asyncio.Event, seconds: float, disconnected: Callable[[], Awaitable[bool]]
) -> None:
    """Return when ``event`` is set, after ``seconds``, or once the client went away (looked at
    every ``DISCONNECT_CHECK_SECONDS``: a client that left is noticed within about a second
    without re-reading the job that often)."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and not await disconnected():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), min(left, DISCONNECT_CHECK_SECONDS))
            return


P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class JobRequest:
    """A validated submit: the model is installed, the params are valid for it."""

    model: str
    params: dict[str, Any]
    queue: str
    """Where the tier sends it (:data:`TIER_QUEUES`)."""


class JobService:
    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        blobs: BlobStore,
        notifier: Notifier,
        dispatch: Callable[[JobRecord, str], Awaitable[None]],
        *,
        fleet: Fleet | None = None,
    ) -> None:
        """``dispatch(job, queue)`` is awaited for each new job: the local runner wakes up;
        a queue-fed deployment enqueues it on ``queue``, and ``fleet`` knows its workers."""
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.notifier = notifier
        self.dispatch = dispatch
        self.fleet = fleet
        self.outbound = Outbound(
            settings.webhook_policy, download_seconds=settings.file_url_seconds
        )

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # -- uploads -------------------------------------------------------------------------------
    async def new_upload(self, extension: str | None) -> str:
        if extension is not None and not _EXTENSION_RE.match(extension):
            raise ServiceError(
                "invalid_extension", "extension must be 1-10 letters or digits, e.g. mp3"
            )
        return await self._call(self.store.create_upload, extension.lower() if extension else None)

    async def receive_upload(
        self, upload_id: str, chunks: AsyncIterable[bytes], declared_size: int | None
    ) -> int:
        """Store an upload's bytes (again, until a job uses them); return the size."""
        await self._check_upload_open(upload_id)
        limit = self.settings.max_upload_bytes
        too_big = ServiceError(
            "too_large", f"the file is larger than this server's limit of {limit} bytes"
        )
        if declared_size is not None and declared_size > limit:  # refuse before reading a byte
            raise too_big
        try:
            staged = await self.blobs.stage(upload_id, chunks, limit)
        except BlobTooLarge:
            raise too_big from None
        except StorageFull:
            raise ServiceError(
                "disk_full",
                "the server's disk is full; free space in its data dir, then PUT the file again",
            ) from None
        try:  # a submit may have taken the upload while its bytes arrived: check again, at once
            committed = await self._call(
                self.store.commit_upload, upload_id, staged.size, staged.publish
            )
        finally:
            await self._call(staged.discard)
        if not committed:  # a job took it (or it was deleted) meanwhile: say which
            await self._check_upload_open(upload_id)
            raise ServiceError("upload_not_found", "this upload URL is unknown or was deleted")
        return staged.size

    async def _check_upload_open(self, upload_id: str) -> None:
        """Refuse an upload that is unknown, or that a job already uses."""
        upload = await self._call(self.store.get_upload, upload_id)
        if upload is None:
            raise ServiceError("upload_not_found", "this upload URL is unknown or was deleted")
        if upload.used:
            raise ServiceError(
                "upload_used",
                "a job was already submitted with this upload URL; get a new one from "
                f"POST {UPLOAD_URL_PATH} to upload another file",
            )

    # -- submit --------------------------------------------------------------------------------
    def installed_models(self) -> list[str]:
        return models.installed(self.settings.models_dir)

    def validate(self, model: str, tier: str, raw_input: dict[str, Any] | None) -> JobRequest:
        """Check a submit before its upload is looked at."""
        if tier not in TIERS:
            raise ServiceError("invalid_tier", f"serviceTier must be one of: {', '.join(TIERS)}")
        info = models.resolve(model, self.settings.models_dir)
        if info is None:
            raise ServiceError(
                "model_not_found",
                f"model '{model}' is not installed on this server; installed: "
                + (", ".join(self.installed_models()) or "none"),
            )
        try:
            params = validate_input(raw_input)
            vocabulary = models.vocabulary_size(info.path)
            check_model_can(params, model, info.english_only, vocabulary)
        except ParamError as exc:
            raise ServiceError("invalid_input", str(exc)) from None
        return JobRequest(model, params, TIER_QUEUES[tier])

    async def submit(
        self, request: JobRequest, upload_id: str, idempotency_key: str | None
    ) -> JobRecord:
        upload = await self._call(self.store.get_upload, upload_id)
        if upload is None or upload.size is None:
            raise ServiceError(
                "not_uploaded", "nothing was uploaded to this URL: PUT the file to it first"
            )
        if idempotency_key is not None:
            existing = await self._call(self.store.job_by_key, idempotency_key)
            if existing is not None:
                return existing
        depth = await self.queue_depth()
        if depth["pending"] >= self.settings.max_queue:
            raise ServiceError(
                "queue_full",
                f"the queue is full ({self.settings.max_queue} jobs waiting); retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        job, created = await self._call(
            self.store.create_job, request.model, request.params, upload_id, idempotency_key
        )
        if created:
            await self.dispatch(job, request.queue)
        return job

    # -- jobs ----------------------------------------------------------------------------------
    async def get(self, job_id: str) -> JobRecord:
        job = await self._call(self.store.get_job, job_id)
        if job is None:
            raise ServiceError("job_not_found", f"no job with id {job_id} on this server")
        return job

    async def wait(
        self,
        job_id: str,
        seconds: float,
        *,
        until_done: bool,
        disconnected: Callable[[], Awaitable[bool]],
    ) -> JobRecord:
        """The job once its status changes (or it ends, with ``until_done``), or after
        ``seconds`` (capped at the protocol's maximum), or when the client went away."""
        job = await self.get(job_id)
        if Status(job.status).terminal:
            return job
        deadline = time.monotonic() + min(seconds, MAX_LONG_POLL_SECONDS)
        initial = job.status

        def answer_now(current: JobRecord) -> bool:
            if until_done:
                return Status(current.status).terminal
            return current.status != initial

        while not answer_now(job):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or await disconnected():
                break
            with self.notifier.subscribe(job_id) as event:
                job = await self.get(job_id)
                if answer_now(job):
                    break
                await _notified(event, min(remaining, LONG_POLL_RECHECK_SECONDS), disconnected)
            job = await self.get(job_id)
        return job

    async def hold(
        self, job: JobRecord, disconnected: Callable[[], Awaitable[bool]]
    ) -> JobRecord | None:
        """The job once it has ended, for a request answered with its result (OpenAI's audio
        routes, OctoAI's synchronous ``/predict``); None, and the job cancelled, when the client
        went away first: nobody would read the answer."""
        while not Status(job.status).terminal:
            if await disconnected():
                await self.abandon(job.id)
                return None
            job = await self.wait(
                job.id, MAX_LONG_POLL_SECONDS, until_done=True, disconnected=disconnected
            )
        return job

    async def abandon(self, job_id: str) -> None:
        """Cancel a job whose client went away (nothing if it ended meanwhile)."""
        with contextlib.suppress(ServiceError):
            await self.cancel(job_id)
            log.info("job %s cancelled: its client went away", job_id)

    async def result(self, job: JobRecord) -> dict[str, Any] | None:
        if not job.has_result:
            return None
        return await self._call(self.store.read_result, job.id)

    async def list(self, status: Status | None, limit: int) -> list[JobRecord]:
        return await self._call(self.store.list_jobs, status.value if status else None, limit)

    async def cancel(self, job_id: str) -> JobRecord:
        job = await self.get(job_id)
        if Status(job.status).terminal:
            raise ServiceError("already_finished", f"job {job_id} already ended ({job.status})")
        cancelled = await self._call(self.store.cancel, job_id)
        if cancelled is None:
            raise ServiceError("job_not_found", f"no job with id {job_id} on this server")
        self.notifier.notify(job_id)
        return cancelled

    async def delete(self, job_id: str) -> None:
        job = await self.get(job_id)
        if job.status == Status.PROCESSING:
            raise ServiceError(
                "job_running", f"job {job_id} is processing: cancel it before deleting it"
            )
        for upload_id in await self._call(self.store.delete_job, job_id) or ():
            await self._call(self.blobs.delete, upload_id)
        self.notifier.notify(job_id)

    async def queue_depth(self) -> dict[str, int]:
        """``pending`` and ``processing`` job counts (the shape ``fleet.queue_depths`` gives
        per queue)."""
        counts = await self._call(self.store.counts)
        return {
            "pending": sum(counts.get(s, 0) for s in QUEUED_STATUSES),
            "processing": counts.get(Status.PROCESSING, 0),
        }

    async def workers(self) -> tuple[Sequence[WorkerInfo], dict[str, dict[str, int]]] | None:
        """The live workers and each queue's depth; None in the embedded mode."""
        if self.fleet is None:
            return None
        return await self._call(self.fleet.live), await self._call(self.fleet.queue_depths)

    async def waiting(self, job: JobRecord) -> str | None:
        """Why a pending job has not started yet (PostgreSQL mode), else None."""
        if self.fleet is None or job.status != Status.PENDING:
            return None
        return await self._call(self.fleet.waiting, job.id)

    # -- webhooks, fetched files and a protocol's metadata ---------------------------------------
    async def check_webhook(self, url: str) -> None:
        """Refuse (``invalid_webhook``) a URL the SSRF guard would not send to (its DNS lookup
        runs on an outbound thread, never in the pool the store calls use)."""
        try:
            await self.outbound.run(guard.check, url, self.settings.webhook_policy)
        except guard.RefusedUrl as exc:
            raise ServiceError("invalid_webhook", f"the webhook URL is refused: {exc}") from None
        except OutboundBusy:
            raise _outbound_busy() from None

    async def add_webhook(
        self,
        job: JobRecord,
        url: str,
        kind: str,
        base_url: str,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Deliver ``job`` to ``url`` once it ends (once per job: a resubmit adds nothing)."""
        await self._call(
            self.store.add_delivery, job.id, new_message_id(), url, kind, base_url, extra or {}
        )

    async def fetch_to_upload(self, url: str) -> str:
        """Download ``url`` into a new upload under the webhook SSRF rules (no redirects, the
        upload size limit, a total deadline; :mod:`~whispercli.server.webhooks.outbound`);
        return the upload id."""
        try:
            async with self.outbound.download(url) as download:
                upload_id = await self.new_upload(None)
                await self.receive_upload(upload_id, download.chunks, download.length)
        except OutboundBusy:
            raise _outbound_busy() from None
        except DownloadFailed as exc:
            raise ServiceError("invalid_file_url", f"cannot download the file URL: {exc}") from None
        return upload_id

    def close(self) -> None:
        """End outbound work in flight (downloads) at shutdown."""
        self.outbound.close()

    async def set_meta(self, job_id: str, data: dict[str, Any]) -> None:
        await self._call(self.store.set_meta, job_id, data)

    async def get_meta(self, job_id: str) -> dict[str, Any] | None:
        return await self._call(self.store.get_meta, job_id)


def _outbound_busy() -> ServiceError:
    return ServiceError(
        "outbound_busy",
        "the server is busy with other downloads and webhook checks; retry in a few seconds",
        {"Retry-After": str(OUTBOUND_RETRY_SECONDS)},
    )
