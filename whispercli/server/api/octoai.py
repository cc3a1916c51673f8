"""OctoAI's Whisper endpoint over the job service: ``GET /healthcheck``, ``POST /predict``.

With ``X-OctoAI-Async: 1`` a predict answers ``{"response_id", "poll_url"}`` at once; the
poll URL answers ``pending|running|completed`` (and ``response_url`` once completed), the
response URL the result. Without the header the same predict waits for the job and answers
the result. A job that failed (422) or was cancelled (410) is an HTTP error on poll, so the
SDK raises instead of polling for ever. The body may be far larger than OctoAI's 10 MB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from whispercli.server.api.deps import AUTH, ID_PATTERN, Service, UrlSigner, errors_doc
from whispercli.server.api.gate import UPLOAD_BASE64, body_limit
from whispercli.server.api.schemas import iso_time
from whispercli.server.jobs.errors import ServiceError
from whispercli.server.jobs.service import JobService
from whispercli.server.storage.store import JobRecord
from whispercli.server.vendors import DEFAULT_MODEL, octoai

HEALTH_PATH = "/healthcheck"
PREDICT_PATH = "/predict"
POLL_PATH = "/v1/octoai/requests/{response_id}"
RESPONSE_PATH = POLL_PATH + "/response"

router = APIRouter(tags=["OctoAI"])
ResponseId = Annotated[str, Path(pattern=ID_PATTERN)]


class OctoAccepted(BaseModel):
    response_id: str
    poll_url: str
    status: str = "pending"


class OctoPoll(BaseModel):
    response_id: str
    status: str = Field(description="pending, running or completed.")
    poll_url: str
    response_url: str | None = None
    created_at: str | None = None


class OctoResult(BaseModel):
    model_config = ConfigDict(extra="allow")
    response: dict[str, Any] = Field(description="text, segments[] (each with text), language")
    transcription: str


def _url(links: UrlSigner, path: str, job_id: str) -> str:
    return links.base_url + path.format(response_id=job_id)


def _check_ended_well(job: JobRecord) -> None:
    code = octoai.ENDED_BADLY.get(job.status)
    if code is not None:  # the reason alone: clients say "job X failed: <reason>"
        why = (job.error or "no reason given") if job.status == "failed" else "it was cancelled"
        raise ServiceError(code, why)


async def _submit(request: Request, service: JobService) -> JobRecord:
    """Stream the body's base64 audio into a new upload (the rest of the body is small and
    parsed at its end), then submit a job on it."""
    reader = octoai.PredictReader()
    upload_id = await service.new_upload(None)

    async def audio() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if data := reader.feed(chunk):
                yield data
        if tail := reader.finish():
            yield tail

    try:
        await service.receive_upload(upload_id, audio(), None)
    except octoai.OctoError as exc:
        raise ServiceError("invalid_input", str(exc)) from None
    except ClientDisconnect:
        raise ServiceError(
            "upload_interrupted", "the request was interrupted; send it again"
        ) from None
    job_request = service.validate(DEFAULT_MODEL, "cpuflex", reader.params)
    return await service.submit(job_request, upload_id, None)


@router.get(
    HEALTH_PATH,
    dependencies=AUTH,
    responses=errors_doc(),
    summary="OctoAI: health check (200 when the server takes requests)",
)
async def healthcheck() -> dict[str, str]:
    return {"status": "ok"}


@router.post(
    PREDICT_PATH,
    response_model=OctoAccepted | OctoResult,
    dependencies=AUTH,
    responses=errors_doc("invalid_input", "too_large", "queue_full", "job_failed", "job_cancelled"),
    summary="OctoAI: transcribe base64 audio (async with X-OctoAI-Async: 1, else waits)",
    openapi_extra={
        **body_limit(UPLOAD_BASE64),
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["audio"],
                        "properties": {
                            "audio": {"type": "string", "description": "The file, base64."},
                            "language": {"type": "string"},
                            "task": {"type": "string", "enum": ["transcribe", "translate"]},
                        },
                        "additionalProperties": True,
                    }
                }
            },
        },
    },
)
async def predict(
    request: Request,
    service: Service,
    links: UrlSigner,
    octoai_async: Annotated[str | None, Header(alias=octoai.ASYNC_HEADER)] = None,
) -> dict[str, Any] | Response:
    job = await _submit(request, service)
    if octoai.is_async(octoai_async):
        return octoai.accepted_body(job.id, _url(links, POLL_PATH, job.id))
    ended = await service.hold(job, request.is_disconnected)
    if ended is None:
        return Response(status_code=499)  # the client went away: nobody reads it
    job = ended
    _check_ended_well(job)
    return octoai.result_body(await service.result(job) or {})


@router.get(
    POLL_PATH,
    response_model=OctoPoll,
    response_model_exclude_none=True,
    dependencies=AUTH,
    responses=errors_doc("job_not_found", "job_failed", "job_cancelled"),
    summary="OctoAI: poll a request (pending, running, completed)",
)
async def poll(service: Service, links: UrlSigner, response_id: ResponseId) -> dict[str, Any]:
    job = await service.get(response_id)
    _check_ended_well(job)
    return octoai.poll_body(
        job.id,
        job.status,
        _url(links, POLL_PATH, job.id),
        _url(links, RESPONSE_PATH, job.id),
        iso_time(job.accepted_at),
    )


@router.get(
    RESPONSE_PATH,
    response_model=OctoResult,
    dependencies=AUTH,
    responses=errors_doc("job_not_found", "not_ready", "job_failed", "job_cancelled"),
    summary="OctoAI: the result of a completed request",
)
async def response(service: Service, response_id: ResponseId) -> dict[str, Any]:
    job = await service.get(response_id)
    _check_ended_well(job)
    result = await service.result(job)
    if result is None:
        raise ServiceError("not_ready", f"request {response_id} has not completed yet; poll it")
    return octoai.result_body(result)
