"""Eden AI v2 async speech-to-text over the job service: launch, get one, list, delete.

``POST /v2/audio/speech_to_text_async`` (with or without the trailing slash: a redirect would
turn a POST into a GET) takes a multipart ``file`` or a JSON/form ``file_url`` (fetched by the
server under the webhook SSRF rules). The job is an ordinary job: ``public_id`` is its id in
UUID form, the Tiyaro routes see it too. Eden's own error shapes are answered here; a missing
or wrong key is the server's usual 401.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from whispercli.protocol import Status
from whispercli.server.api.deps import AUTH, Service, UrlSigner
from whispercli.server.api.forms import receive_form
from whispercli.server.api.gate import UPLOAD, body_limit
from whispercli.server.api.schemas import ErrorBody, iso_time
from whispercli.server.api.webhook_bodies import eden_job_body
from whispercli.server.jobs.errors import ServiceError
from whispercli.server.jobs.service import JobService
from whispercli.server.storage.store import JobRecord
from whispercli.server.vendors import edenai, jsonbody
from whispercli.server.vendors.multipart import FormError, boundary_of

BASE = "/v2/audio/speech_to_text_async"
MAX_JSON_BYTES = 1024 * 1024
router = APIRouter(tags=["Eden AI v2"])


class EdenLaunched(BaseModel):
    public_id: str = Field(examples=["9421ae03-6180-4aef-82ce-19b2c33e9397"])


class EdenJob(BaseModel):
    model_config = ConfigDict(extra="allow")
    public_id: str
    status: str = Field(description="processing, finished or failed.")
    error: dict[str, Any] | None
    results: dict[str, Any] = Field(
        description="Once ended: one entry per provider asked for (text, diarization, ...)."
    )


class EdenJobList(BaseModel):
    jobs: list[dict[str, Any]]


class EdenInvalid(BaseModel):
    error: dict[str, Any] = Field(
        description='{"type": "Invalid request", "message": {"<field>": ["<why>"]}}'
    )


class EdenFailure(BaseModel):
    error: dict[str, Any] = Field(description='{"type": "<kind>", "message": "<why>"}')


class EdenNotFound(BaseModel):
    details: str = Field(examples=["Not Found"])


_ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    400: {"model": EdenInvalid},
    401: {"model": ErrorBody},
    404: {"model": EdenNotFound},
}
_LAUNCH_BODY = {
    **body_limit(UPLOAD),
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["providers", "file"],
                    "properties": {
                        "providers": {"type": "string", "example": "whisper"},
                        "file": {"type": "string", "format": "binary"},
                        "language": {"type": "string"},
                        "speakers": {"type": "string"},
                        "webhook_receiver": {"type": "string"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["providers", "file_url"],
                    "properties": {
                        "providers": {"type": "string", "example": "whisper/tiny"},
                        "file_url": {"type": "string"},
                        "language": {"type": "string"},
                        "speakers": {"type": "integer"},
                        "profanity_filter": {"type": "boolean"},
                        "custom_vocabulary": {"type": "string"},
                        "settings": {"type": "object"},
                        "provider_params": {"type": "object"},
                        "show_original_response": {"type": "boolean"},
                        "webhook_receiver": {"type": "string"},
                        "users_webhook_parameters": {"type": "object"},
                        "send_webhook_data": {"type": "boolean"},
                    },
                }
            },
        },
    },
}


def _job_id(public: str) -> str:
    job_id = edenai.job_id_of(public)
    if job_id is None:
        raise edenai.simple_error(404, "NotFound", "no such job")
    return job_id


def _eden_response(exc: edenai.EdenError) -> JSONResponse:
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers or None)


def _from_service(exc: ServiceError, field: str) -> edenai.EdenError:
    """A job-service error in Eden's shapes."""
    if exc.status == 404 and exc.code != "model_not_found":
        return edenai.simple_error(404, "NotFound", exc.message)
    if exc.status in (400, 404):
        return edenai.invalid(field, exc.message)
    return edenai.simple_error(exc.status, exc.code, exc.message, exc.headers)


async def _read_capped(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise edenai.invalid("body", "The request body is larger than 1 MiB.")
    return bytes(body)


async def _fields_and_upload(
    request: Request, service: JobService
) -> tuple[dict[str, Any], str | None]:
    """The launch fields, and the upload the multipart ``file`` went to (if any)."""
    content_type = request.headers.get("content-type", "")
    boundary = boundary_of(content_type)
    if boundary is not None:
        try:
            reader, upload_id = await receive_form(request, service, boundary)
        except FormError as exc:
            raise edenai.invalid(exc.field, str(exc)) from None
        except ServiceError as exc:
            raise _from_service(exc, "file") from None
        return dict(reader.fields), upload_id if reader.has_file else None
    raw = await _read_capped(request)
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)), None
        except UnicodeDecodeError:
            raise edenai.invalid("body", "The form is not UTF-8 text.") from None
    try:
        fields = jsonbody.loads(raw) if raw.strip() else {}
    except jsonbody.JsonBodyError as exc:
        raise edenai.invalid(
            "body", f"JSON parse error ({exc}): send JSON or multipart/form-data."
        ) from None
    if not isinstance(fields, dict):
        raise edenai.invalid("body", "The body must be a JSON object.")
    return fields, None


async def _fetch(service: JobService, url: str) -> str:
    """Download ``file_url`` (SSRF rules, no redirects) into a new upload."""
    try:
        return await service.fetch_to_upload(url)
    except ServiceError as exc:
        raise _from_service(exc, "file_url") from None


async def _body(service: JobService, job: JobRecord) -> dict[str, Any]:
    return eden_job_body(job, await service.result(job), await service.get_meta(job.id))


async def launch(request: Request, service: Service, links: UrlSigner) -> Any:
    try:
        try:
            fields, upload_id = await _fields_and_upload(request, service)
        except ClientDisconnect:
            raise edenai.invalid("file", "The upload was interrupted; send it again.") from None
        parsed = edenai.parse_launch(fields, has_file=upload_id is not None)
        try:
            job_request = service.validate(parsed.model, "cpuflex", parsed.whisper_input)
        except ServiceError as exc:
            field = "providers" if exc.code == "model_not_found" else "provider_params"
            if exc.code == "invalid_input" and "language" in exc.message:
                field = "language"
            raise _from_service(exc, field) from None
        if parsed.webhook_receiver is not None:
            try:
                await service.check_webhook(parsed.webhook_receiver)
            except ServiceError as exc:
                raise _from_service(exc, "webhook_receiver") from None
        if parsed.file_url is not None:
            upload_id = await _fetch(service, parsed.file_url)
        assert upload_id is not None
        try:
            job = await service.submit(job_request, upload_id, None)
        except ServiceError as exc:
            raise _from_service(exc, "file") from None
        await service.set_meta(
            job.id,
            {
                "protocol": "edenai",
                "providers": list(parsed.providers),
                "show_original_response": parsed.show_original_response,
            },
        )
        if parsed.webhook_receiver is not None:
            await service.add_webhook(
                job,
                parsed.webhook_receiver,
                "edenai",
                links.base_url,
                {
                    "users_webhook_parameters": parsed.users_webhook_parameters,
                    "send_webhook_data": parsed.send_webhook_data,
                },
            )
    except edenai.EdenError as exc:
        return _eden_response(exc)
    return {"public_id": edenai.public_id(job.id)}


async def get_job(service: Service, public_id: str) -> Any:
    try:
        job = await service.get(_job_id(public_id))
        return await _body(service, job)
    except edenai.EdenError as exc:
        return _eden_response(exc)
    except ServiceError as exc:
        return _eden_response(_from_service(exc, "public_id"))


async def list_jobs(service: Service) -> dict[str, Any]:
    jobs = await service.list(None, 1000)
    rows = []
    for job in jobs:
        meta = await service.get_meta(job.id)
        rows.append(
            edenai.list_entry(
                edenai.public_id(job.id),
                edenai.providers_of(meta),
                job.status,
                iso_time(job.accepted_at),
            )
        )
    return {"jobs": rows}


async def delete_jobs(service: Service) -> Response:
    """Delete every ended job (queued and processing ones are kept)."""
    for job in await service.list(None, 100_000):
        if Status(job.status).terminal:
            with contextlib.suppress(ServiceError):  # deleted meanwhile
                await service.delete(job.id)
    return Response(status_code=204)


for path in (BASE, BASE + "/"):
    router.add_api_route(
        path,
        launch,
        methods=["POST"],
        response_model=EdenLaunched,
        dependencies=AUTH,
        responses={
            **_ERRORS_DOC,
            413: {"model": EdenFailure},
            429: {"model": EdenFailure, "description": "Queue full; see Retry-After."},
            507: {"model": EdenFailure},
        },
        openapi_extra=_LAUNCH_BODY,
        summary="Eden AI: launch a speech-to-text job (multipart file or file_url)",
    )
    router.add_api_route(
        path,
        list_jobs,
        methods=["GET"],
        response_model=EdenJobList,
        dependencies=AUTH,
        responses={401: {"model": ErrorBody}},
        summary="Eden AI: list the jobs",
    )
    router.add_api_route(
        path,
        delete_jobs,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        dependencies=AUTH,
        responses={401: {"model": ErrorBody}},
        summary="Eden AI: delete every ended job",
    )
    router.add_api_route(
        path.rstrip("/") + "/{public_id}" + ("/" if path.endswith("/") else ""),
        get_job,
        methods=["GET"],
        response_model=EdenJob,
        dependencies=AUTH,
        responses=_ERRORS_DOC,
        summary="Eden AI: get a job (status, and results once it ended)",
    )
