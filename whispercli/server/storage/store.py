"""The job store interface: what the job service and the runner need from storage.

A :class:`Store` keeps jobs (status, attempts, progress, partial segments, result, error),
upload metadata and idempotency keys, and applies retention. The bytes of an upload live in a
:class:`~.blobs.BlobStore`; deleting a job or sweeping returns the ids of the uploads no job
uses any more, and the caller deletes their blobs.

Writes made on behalf of a running job are *fenced by its attempt*: ``set_progress`` and
``finish`` take the attempt number the worker was given by ``claim_next`` and change nothing
(returning False) when the job has moved on (re-queued, re-claimed, cancelled, deleted).

Implementations: :class:`whispercli.server.storage.sqlite.SqliteStore` (the embedded default).
tests/server/test_store_contract.py is the contract every implementation passes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from whispercli.protocol import Status
from whispercli.server.storage.deliveries import Outbox


@dataclass(frozen=True)
class Upload:
    id: str
    extension: str | None
    created_at: float
    size: int | None
    """Bytes stored, or None while nothing was uploaded."""
    used: bool = False
    """A job was submitted with this upload (its URL then takes no other PUT)."""


@dataclass(frozen=True)
class JobRecord:
    id: str
    status: str
    model: str
    params: dict[str, Any]
    upload_id: str
    attempts: int
    progress: float
    segments: list[dict[str, Any]]
    has_result: bool
    error: str | None
    cancel_requested: bool
    accepted_at: float
    started_at: float | None
    completed_at: float | None


@dataclass(frozen=True)
class Swept:
    """What a retention sweep removed: jobs, and uploads whose blobs the caller deletes."""

    jobs: int
    uploads: list[str]


TAKEN_OVER_REASON = "the worker running this job stopped"
"""The error of a job whose workers kept dying until ``claim`` ran out of attempts."""


def gave_up(reason: str, attempts: int) -> str:
    """The error of a job failed for ``reason`` once it used up its ``attempts``."""
    return f"{reason}; gave up after {attempts} attempts"


class StoreUnavailable(Exception):
    """The database cannot be reached right now; the request may be retried later."""


def new_id() -> str:
    return secrets.token_hex(16)


class Store(Outbox, Protocol):
    """Jobs, uploads metadata, attempts, progress, results, idempotency keys, retention;
    per job, a protocol's metadata and a webhook delivery (:class:`Outbox`). Deleting a job
    deletes both."""

    def close(self) -> None: ...

    # -- uploads -------------------------------------------------------------------------------
    def create_upload(self, extension: str | None) -> str:
        """Record a new, empty upload; return its id."""
        ...

    def get_upload(self, upload_id: str) -> Upload | None: ...

    def commit_upload(self, upload_id: str, size: int, publish: Callable[[], None]) -> bool:
        """Unless a job already uses the upload (or it is gone), call ``publish`` (which puts
        its new bytes in place) and record ``size``, as one atomic step: a ``create_job`` on
        the upload waits while it runs. False: nothing was published."""
        ...

    # -- jobs ----------------------------------------------------------------------------------
    def create_job(
        self, model: str, params: dict[str, Any], upload_id: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        """Insert a pending job, or return the job of a known idempotency key (created False)."""
        ...

    def get_job(self, job_id: str) -> JobRecord | None: ...

    def job_by_key(self, idempotency_key: str) -> JobRecord | None: ...

    def list_jobs(self, status: str | None, limit: int) -> list[JobRecord]:
        """Newest first."""
        ...

    def counts(self) -> dict[str, int]:
        """Number of jobs per status (statuses with none may be missing)."""
        ...

    def read_result(self, job_id: str) -> dict[str, Any] | None: ...

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued job now; flag a processing one (``cancel_requested``)."""
        ...

    def delete_job(self, job_id: str) -> list[str] | None:
        """Delete a job and its result; None when unknown, else the upload ids now unused."""
        ...

    def set_meta(self, job_id: str, data: dict[str, Any]) -> None:
        """Keep a protocol's data about a job (Eden's providers...), replacing any."""
        ...

    def get_meta(self, job_id: str) -> dict[str, Any] | None: ...

    # -- the worker side (fenced by attempt) --------------------------------------------------
    def claim_next(self) -> JobRecord | None:
        """Move the oldest queued job to ``processing`` with one more attempt; return it."""
        ...

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
        """Start ``job_id`` for the worker a queue handed it to: a queued job, or one left
        ``processing`` by a worker that died (taking it over fences out the old attempt), moves
        to ``processing`` with one more attempt. None when there is nothing to run: unknown or
        finished; a cancel was asked (it ends ``cancelled``); a take-over past
        ``max_attempts`` (it ends ``failed``)."""
        ...

    def set_progress(
        self, job_id: str, attempt: int, progress: float, segments: list[dict[str, Any]]
    ) -> bool: ...

    def finish(
        self,
        job_id: str,
        attempt: int,
        status: Status,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record a terminal status (with the result on success) if ``attempt`` still runs."""
        ...

    def requeue_or_fail(self, job_id: str, attempt: int, reason: str, max_attempts: int) -> str:
        """After a crash mid-job: queue it again, cancel it if asked, or fail it once
        ``max_attempts`` are used up. Returns the new status ("gone" when not running it)."""
        ...

    def release(self, job_id: str, attempt: int) -> None:
        """Put a processing job back in the queue without counting the attempt (clean stop)."""
        ...

    def recover(self, max_attempts: int) -> list[str]:
        """On start of the only worker: jobs a crash left ``processing`` are re-queued or
        failed; returns their new statuses."""
        ...

    # -- retention -----------------------------------------------------------------------------
    def sweep(self, retention: float) -> Swept:
        """Delete jobs that ended more than ``retention`` seconds ago, and uploads that old
        which no job uses."""
        ...
