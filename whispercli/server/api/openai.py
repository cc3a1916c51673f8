"""OpenAI's audio API over the job service: ``POST /v1/audio/transcriptions``,
``POST /v1/audio/translations``, ``GET /v1/models`` and ``GET /v1/models/{id}``.

Every request is an ordinary job (same queue, limits, key, retention; listed in
``GET /v1/async/jobs``; run by the local runner or by PostgreSQL-mode workers): the multipart
``file`` streams into an upload as it arrives (no temporary file), the job is submitted, and the
request is held open while the job runs (long-polling it through the service, so a job re-picked
after a worker died still answers here). ``stream=true`` answers server-sent events instead: one
``transcript.text.delta`` per segment as soon as it and every segment before it are decoded
(from the job's partial segments), then ``transcript.text.done``. A client that goes away
cancels its job. The job id is in the ``x-request-id`` header.

Every failure of these routes answers OpenAI's ``{"error": {"message", "type", "param",
"code"}}`` (the shapes: server/vendors/openai.py); the rest of the server keeps its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

import whispercli.modelhub as modelhub
from whispercli.protocol import TERMINAL_STATUSES
from whispercli.server.api.deps import AUTH, Service
from whispercli.server.api.errors import INTERNAL, UNAVAILABLE, UNAVAILABLE_RETRY_SECONDS
from whispercli.server.api.forms import receive_form
from whispercli.server.api.gate import (
    ERROR_SHAPES,
    UPLOAD,
    BodyTooLarge,
    body_limit,
    error_shape,
)
from whispercli.server.jobs import models
from whispercli.server.jobs.errors import ERRORS, ServiceError
from whispercli.server.jobs.service import JobService
from whispercli.server.storage.store import JobRecord, StoreUnavailable
from whispercli.server.vendors import openai as shapes
from whispercli.server.vendors.multipart import FormError, FormReader, boundary_of

TRANSCRIPTIONS_PATH = "/v1/audio/transcriptions"
TRANSLATIONS_PATH = "/v1/audio/translations"
MODELS_PATH = "/v1/models"
STREAM_POLL_SECONDS = 0.25
"""How often a stream reads the job's partial segments (the engine writes them every 0.3 s)."""
KEEPALIVE_SECONDS = 10.0
JOB_HEADER = "x-request-id"
log = logging.getLogger("whispercli.server")


class _OpenAIRoute(APIRoute):
    """Answers every failure of these routes (the key check and bad input included) in
    OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except shapes.OpenAIError as exc:
                return _error(exc)
            except ServiceError as exc:
                return _error(shapes.from_service(exc.status, exc.code, exc.message, exc.headers))
            except RequestValidationError as exc:
                where = ".".join(str(p) for p in exc.errors()[0].get("loc", ())[1:]) or None
                return _error(shapes.OpenAIError(400, f"invalid request: {where}", param=where))
            except BodyTooLarge as exc:
                return _gate_error("too_large", str(exc.detail), dict(exc.headers or {}))
            except StoreUnavailable:
                retry = {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}
                return _gate_error("unavailable", UNAVAILABLE, retry)
            except Exception:
                log.exception("unexpected error on %s", request.url.path)
                return _gate_error("internal_error", INTERNAL, {})

        return route


router = APIRouter(tags=["OpenAI"], route_class=_OpenAIRoute)
SHAPE = error_shape("openai")
"""The gate answers these routes' 401 and 413 in OpenAI's shape too."""
ModelId = Annotated[str, Path(description="A model name, or whisper-1.")]


def _error(exc: shapes.OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)


def _gate_error(code: str, message: str, headers: dict[str, str]) -> Response:
    return _error(shapes.from_service(ERRORS[code], code, message, headers))


ERROR_SHAPES["openai"] = _gate_error


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    error: OpenAIErrorDetail


class OpenAIModel(BaseModel):
    id: str = Field(examples=["whisper-1"])
    object: str = "model"
    created: int
    owned_by: str


class OpenAIModelList(BaseModel):
    object: str = "list"
    data: list[OpenAIModel]


class OpenAITranscription(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str
    usage: dict[str, Any] | None = Field(
        default=None, examples=[{"type": "duration", "seconds": 3}]
    )


_ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    status: {"model": OpenAIErrorBody} for status in (400, 401, 404, 413, 429, 500)
}
_AUDIO_DOC: dict[int | str, dict[str, Any]] = {
    **_ERRORS_DOC,
    200: {
        "model": OpenAITranscription,
        "description": "json / verbose_json; text, srt and vtt as text/plain; with stream=true "
        "text/event-stream (transcript.text.delta per segment, then transcript.text.done).",
        "content": {"text/plain": {}, "text/event-stream": {}},
    },
}


def _form_doc(task: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "file": {"type": "string", "format": "binary"},
        "model": {"type": "string", "example": shapes.WHISPER_1},
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(shapes.FORMATS)},
        "temperature": {"type": "number"},
        "stream": {"type": "boolean"},
    }
    if task == shapes.TRANSCRIBE:
        properties["language"] = {"type": "string"}
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": ["word", "segment"]},
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "model"],
                        "properties": properties,
                        "additionalProperties": {
                            "type": "string",
                            "description": "extra_body: beam_size, vad_filter, hotwords, speed...",
                        },
                    }
                }
            },
        }
    }


async def _read_form(request: Request, service: JobService) -> tuple[FormReader, str]:
    """The form (its text fields), and the upload its ``file`` part streamed into."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    if boundary is None:
        raise shapes.OpenAIError(
            400, "send the audio as multipart/form-data with a 'file' part", param="file"
        )
    try:
        reader, upload_id = await receive_form(request, service, boundary)
    except FormError as exc:
        raise shapes.OpenAIError(400, str(exc), param=exc.field) from None
    except ClientDisconnect:
        raise shapes.OpenAIError(400, "the upload was interrupted; send it again") from None
    except ServiceError as exc:
        raise shapes.from_service(exc.status, exc.code, exc.message, exc.headers, "file") from None
    return reader, upload_id


def _model(service: JobService, asked: str, task: str) -> str:
    """The installed model a request names (``whisper-1``: the server's default model)."""
    name = service.settings.default_model if asked == shapes.WHISPER_1 else asked
    info = models.resolve(name, service.settings.models_dir)
    if info is None:
        alias = f" (this server's default model, {name})" if asked != name else ""
        installed = ", ".join([shapes.WHISPER_1, *service.installed_models()])
        raise shapes.OpenAIError(
            404,
            f"model '{asked}'{alias} is not installed on this server; installed: {installed}",
            param="model",
            code="model_not_found",
        )
    if task == shapes.TRANSLATE and info.english_only:
        multilingual = [
            m.name for m in modelhub.installed(service.settings.models_dir) if not m.english_only
        ]
        why = shapes.translate_refusal(asked, name, multilingual)
        raise shapes.OpenAIError(400, why, param="model", code="invalid_value")
    return name


async def _submit(
    request: Request, service: JobService, task: str
) -> tuple[JobRecord, shapes.AudioRequest]:
    form, upload_id = await _read_form(request, service)
    audio = shapes.parse_form(form.pairs, task, has_file=form.has_file)
    job_request = service.validate(_model(service, audio.model, task), "cpuflex", audio.params)
    job = await service.submit(job_request, upload_id, None)
    return job, audio


async def _answer(request: Request, service: Service, task: str) -> Response:
    job, audio = await _submit(request, service, task)
    headers = {JOB_HEADER: job.id}
    if audio.stream:
        return StreamingResponse(
            _events(service, job.id),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    ended = await service.hold(job, request.is_disconnected)
    if ended is None:
        return Response(status_code=499)  # nobody reads it
    job = ended
    failure = shapes.ended_badly(job.status, job.error)
    if failure is not None:
        failure.headers.update(headers)
        raise failure
    result = await service.result(job) or {}
    if audio.response_format in shapes.TEXT_FORMATS:
        text = shapes.text_body(result, audio.response_format)
        return PlainTextResponse(text, headers=headers)
    if audio.response_format == "verbose_json":
        return JSONResponse(shapes.verbose_body(result, task, audio.words), headers=headers)
    return JSONResponse(shapes.json_body(result), headers=headers)


async def _never() -> bool:
    return False


async def _events(service: JobService, job_id: str) -> AsyncIterator[str]:
    """The SSE stream of one job; a client that goes away (the response is cancelled) cancels
    the job."""
    ended = False
    sent, beat = 0, time.monotonic()
    try:
        job = await service.get(job_id)
        while True:
            for segment in shapes.ready_segments(job.segments, sent):
                yield shapes.sse(shapes.delta_event(segment, sent))
                sent, beat = sent + 1, time.monotonic()
            if job.status in TERMINAL_STATUSES:
                break
            if time.monotonic() - beat >= KEEPALIVE_SECONDS:
                yield shapes.KEEPALIVE
                beat = time.monotonic()
            job = await service.wait(
                job_id, STREAM_POLL_SECONDS, until_done=True, disconnected=_never
            )
        ended = True
        failure = shapes.ended_badly(job.status, job.error)
        if failure is not None:
            yield shapes.sse(failure.body())
            return
        result = await service.result(job) or {}
        for segment in shapes.ready_segments(result.get("segments") or [], sent):
            yield shapes.sse(shapes.delta_event(segment, sent))
            sent += 1
        yield shapes.sse(shapes.done_event(result))
    except ServiceError as exc:  # the job was deleted meanwhile
        ended = True
        yield shapes.sse(shapes.from_service(exc.status, exc.code, exc.message).body())
    except StoreUnavailable:
        ended = True  # nothing can be cancelled either
        message = "the server's database became unavailable; transcribe the file again"
        yield shapes.sse(shapes.OpenAIError(503, message, code="unavailable").body())
    finally:
        if not ended:
            with anyio.CancelScope(shield=True):
                await service.abandon(job_id)


@router.post(
    TRANSCRIPTIONS_PATH,
    dependencies=AUTH,
    responses=_AUDIO_DOC,
    openapi_extra={**_form_doc(shapes.TRANSCRIBE), **body_limit(UPLOAD), **SHAPE},
    summary="OpenAI: transcribe an audio file (multipart; stream=true for server-sent events)",
)
async def transcriptions(request: Request, service: Service) -> Response:
    return await _answer(request, service, shapes.TRANSCRIBE)


@router.post(
    TRANSLATIONS_PATH,
    dependencies=AUTH,
    responses=_AUDIO_DOC,
    openapi_extra={**_form_doc(shapes.TRANSLATE), **body_limit(UPLOAD), **SHAPE},
    summary="OpenAI: translate an audio file into English text (needs a multilingual model)",
)
async def translations(request: Request, service: Service) -> Response:
    return await _answer(request, service, shapes.TRANSLATE)


def _entries(service: JobService) -> dict[str, dict[str, Any]]:
    """Every installed model by name, and ``whisper-1`` (the default model) when installed."""
    entries = {}
    for installed in modelhub.installed(service.settings.models_dir):
        created = int(installed.path.stat().st_mtime)
        entries[installed.name] = shapes.model_entry(installed.name, created)
    default = entries.get(service.settings.default_model)
    info = models.resolve(service.settings.default_model, service.settings.models_dir)
    if default is None and info is not None:  # a repo id, say, listed under its short name
        default = shapes.model_entry(info.name, int(info.path.stat().st_mtime))
    if default is not None:
        entries = {shapes.WHISPER_1: {**default, "id": shapes.WHISPER_1}, **entries}
    return entries


@router.get(
    MODELS_PATH,
    response_model=OpenAIModelList,
    dependencies=AUTH,
    responses={401: {"model": OpenAIErrorBody}},
    openapi_extra=SHAPE,
    summary="OpenAI: the installed models (and whisper-1, the server's default model)",
)
async def list_models(service: Service) -> dict[str, Any]:
    return shapes.models_body(list(_entries(service).values()))


@router.get(
    MODELS_PATH + "/{model_id:path}",
    response_model=OpenAIModel,
    dependencies=AUTH,
    responses={401: {"model": OpenAIErrorBody}, 404: {"model": OpenAIErrorBody}},
    openapi_extra=SHAPE,
    summary="OpenAI: one model",
)
async def get_model(service: Service, model_id: ModelId) -> dict[str, Any]:
    entry = _entries(service).get(model_id)
    if entry is None:
        info = models.resolve(model_id, service.settings.models_dir)  # a repo id, say
        if info is None:
            raise shapes.OpenAIError(
                404,
                f"model '{model_id}' is not installed on this server",
                param="model",
                code="model_not_found",
            )
        entry = shapes.model_entry(model_id, int(info.path.stat().st_mtime))
    return entry
