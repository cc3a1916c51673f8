"""Pydantic models of the HTTP bodies: they document every endpoint in the OpenAPI schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from whispercli.protocol import Status

if TYPE_CHECKING:
    from whispercli.server.storage.store import JobRecord


def iso_time(ts: float | None) -> str | None:
    """A store timestamp as the protocol writes it (UTC, milliseconds, ``Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no job with id 0123 on this server"])


class ErrorBody(BaseModel):
    error: ErrorDetail


class PutUrl(BaseModel):
    PUT: str = Field(description="Signed URL to PUT the raw file bytes to (no auth header).")


class UploadUrlResponse(BaseModel):
    uploadUrl: PutUrl


class UploadDone(BaseModel):
    size: int = Field(description="Bytes stored.")


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] | None = Field(
        default=None,
        description="Whisper parameters (language, task, temperature, beam_size, ...). "
        "An unknown or ill-typed parameter is a 400 naming it.",
    )
    URL: str = Field(description="The upload URL returned by step 1, after the PUT of step 2.")
    webhook: str | None = Field(
        default=None,
        description="Extension: POST the job body here (signed, Standard Webhooks) once it ends.",
    )


class GetUrl(BaseModel):
    GET: str = Field(description="Signed poll URL (send the Bearer key too).")


class ResultBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str
    segments: list[dict[str, Any]]
    language: str | None = None
    duration: float | None = None
    warnings: list[str] = Field(
        default_factory=list,
        description="Why the transcript may be wrong: low confidence (e.g. speech in another "
        "language on an English-only model), repeats, no speech (extension).",
    )


class JobBody(BaseModel):
    id: str
    status: str = Field(description="accepted, pending, processing, success, failed or cancelled.")
    model: str
    acceptedAt: str | None
    startedAt: str | None
    completedAt: str | None
    urls: GetUrl
    progress: float | None = Field(default=None, description="0..1 (extension).")
    segments: list[dict[str, Any]] | None = Field(
        default=None, description="Segments so far, while processing (extension)."
    )
    result: ResultBody | None = Field(default=None, description="On success.")
    error: str | None = Field(default=None, description="On failure: what went wrong.")
    waiting: str | None = Field(
        default=None,
        description="While pending on a server with workers (PostgreSQL mode): why the job has "
        "not started, e.g. no live worker serves its queue (extension).",
    )

    @classmethod
    def from_job(
        cls,
        job: JobRecord,
        poll_url: str,
        result: dict[str, Any] | None = None,
        waiting: str | None = None,
    ) -> JobBody:
        """The one job body (submit, poll, list, cancel); unset fields stay out of it."""
        fields: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "model": job.model,
            "acceptedAt": iso_time(job.accepted_at),
            "startedAt": iso_time(job.started_at),
            "completedAt": iso_time(job.completed_at),
            "urls": {"GET": poll_url},
            "progress": round(job.progress, 4),
        }
        if job.status == Status.PROCESSING:
            fields["segments"] = job.segments
        if job.error is not None:
            fields["error"] = job.error
        if result is not None:
            fields["result"] = result
        if waiting is not None:
            fields["waiting"] = waiting
        return cls.model_validate(fields)


class SubmitResponse(BaseModel):
    response: JobBody


class JobList(BaseModel):
    jobs: list[JobBody]


class QueueDepth(BaseModel):
    pending: int
    processing: int


class WorkerBody(BaseModel):
    id: str
    host: str
    queues: list[str]
    device: str
    models: list[str]
    currentJobs: list[str] = Field(description="The jobs it runs now, oldest first.")
    capacity: int = Field(description="How many jobs it runs at once (decoded together).")
    heartbeatAge: float = Field(description="Seconds since its last heartbeat.")


class HealthResponse(BaseModel):
    status: str
    version: str
    models: list[str] = Field(description="Installed model names (any of them can be submitted).")
    loadedModels: list[str] = Field(default=[], description="Models loaded in the worker now.")
    device: str | None = Field(default=None, description="cpu or cuda: where jobs decode.")
    queue: QueueDepth
    maxUploadBytes: int
    longPoll: bool
    workers: list[WorkerBody] | None = Field(
        default=None, description="PostgreSQL mode: the live workers (extension)."
    )
    queues: dict[str, QueueDepth] | None = Field(
        default=None, description="PostgreSQL mode: depth per queue, cpu and gpu (extension)."
    )
