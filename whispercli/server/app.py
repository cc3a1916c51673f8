"""The HTTP API: the Tiyaro async protocol's four steps plus the local extensions.

``create_app(settings)`` builds the FastAPI app; ``whispercli server run`` serves it with
uvicorn. Request handlers only touch the store (short SQLite statements) and the disk; the
engine runs in the worker process that :class:`~whispercli.server.worker.Supervisor` owns.
"""

import asyncio
import contextlib
import errno
import hmac
import logging
import os
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from whispercli import __version__
from whispercli.fsutil import is_private, read_or_create_secret
from whispercli.protocol import (
    HEALTH_PATH,
    IDEMPOTENCY_HEADER,
    JOB_CANCEL_PATH,
    JOB_PATH,
    JOBS_PATH,
    MAX_LONG_POLL_SECONDS,
    SUBMIT_PATH,
    TIERS,
    UPLOAD_PUT_PATH,
    UPLOAD_URL_PATH,
    Status,
)
from whispercli.server import models
from whispercli.server.params import ParamError, check_model_can, validate_input
from whispercli.server.schemas import (
    ErrorBody,
    HealthResponse,
    JobBody,
    JobList,
    SubmitRequest,
    SubmitResponse,
    UploadDone,
    UploadUrlResponse,
)
from whispercli.server.settings import InsecureKeyFileError, ServerSettings
from whispercli.server.signing import SignatureError, Signer
from whispercli.server.store import Job, Store
from whispercli.server.worker import Supervisor

log = logging.getLogger("whispercli.server")

_UPLOAD_PATH_RE = re.compile(r"^/v1/input/uploads/([0-9a-f]{32})$")
_EXTENSION_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")
_ID_PATTERN = r"^[0-9a-f]{32}$"
RETRY_AFTER_SECONDS = 10
_CHUNK = 1024 * 1024


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Changes:
    """Wakes long-poll requests when a job changes; safe to call from any thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, job_id: str) -> None:
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                self.loop.call_soon_threadsafe(self._wake, job_id)

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    @contextlib.contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]


def _errors_doc(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorBody} for code in (401, *codes)}


def create_app(settings: ServerSettings) -> FastAPI:
    """Build the app; the API key and URL secret are read (or created) here."""
    api_key = settings.load_api_key()
    secret_file = settings.data_dir / "url-secret"
    signer = Signer(read_or_create_secret(secret_file))
    if not is_private(secret_file):
        raise InsecureKeyFileError(f"{secret_file} is readable by other users; chmod 600 it")
    store = Store(settings.data_dir)
    changes = Changes()
    supervisor = Supervisor(store, settings, changes.notify)
    last_request = [time.monotonic()]

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        changes.loop = asyncio.get_running_loop()
        outcomes = store.recover(settings.max_attempts)
        if outcomes:
            log.info("recovered %d interrupted jobs: %s", len(outcomes), ", ".join(outcomes))
        supervisor.start()
        idle_task = asyncio.create_task(_exit_when_idle()) if settings.idle_timeout > 0 else None
        try:
            yield
        finally:
            if idle_task is not None:
                idle_task.cancel()
            await asyncio.to_thread(supervisor.stop)
            store.close()

    async def _exit_when_idle() -> None:
        while True:
            await asyncio.sleep(min(5.0, settings.idle_timeout / 4))
            counts = store.counts()
            queued = sum(counts.get(s, 0) for s in ("accepted", "pending", "processing"))
            idle_for = time.monotonic() - last_request[0]
            if queued == 0 and not supervisor.busy and idle_for > settings.idle_timeout:
                log.info("no request for %.0f s and no work: exiting", idle_for)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    app = FastAPI(
        title="whispercli local server",
        version=__version__,
        description="The Tiyaro async speech-to-text API, served locally by faster-whisper.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.supervisor = supervisor

    bearer = HTTPBearer(auto_error=False, description="The key in the server's api-key file.")

    def require_key(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(
                401,
                "unauthorized",
                "missing or wrong API key: send 'Authorization: Bearer <key>' with the key "
                "from the server's api-key file",
                {"WWW-Authenticate": "Bearer"},
            )

    auth = [Depends(require_key)]

    # -- errors -------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        return _error_response(400, "invalid_request", "invalid request: " + "; ".join(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _error_response(exc.status_code, code, str(exc.detail), exc.headers)

    @app.exception_handler(sqlite3.OperationalError)
    async def _database(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # A handler of its own (not the catch-all below, which Starlette re-raises after
        # answering) so that a full disk is a 507 without a traceback in the log.
        if "database or disk is full" in str(exc):
            return _error_response(
                507, "disk_full", "the server's disk is full; free space in its data dir and retry"
            )
        log.error("database error while serving a request", exc_info=exc)
        return _error_response(
            500, "internal_error", "the server hit an unexpected error; see the server log"
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=exc)
        return _error_response(
            500, "internal_error", "the server hit an unexpected error; see the server log"
        )

    @app.middleware("http")
    async def _log_and_touch(request: Request, call_next: Any) -> Response:
        # Logs the path only: query strings carry URL signatures.
        last_request[0] = time.monotonic()
        started = time.perf_counter()
        response: Response = await call_next(request)
        last_request[0] = time.monotonic()
        log.info(
            "%s %s %d %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    # -- helpers ------------------------------------------------------------------------------
    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def poll_url(request: Request, job: Job) -> str:
        path = JOB_PATH.format(job_id=job.id)
        signed = signer.sign("GET", path, settings.effective_poll_url_ttl, now=job.accepted_at)
        return base_url(request) + signed

    def job_body(request: Request, job: Job, *, with_result: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": job.id,
            "status": job.status,
            "model": job.model,
            "acceptedAt": _iso(job.accepted_at),
            "startedAt": _iso(job.started_at),
            "completedAt": _iso(job.completed_at),
            "urls": {"GET": poll_url(request, job)},
            "progress": round(job.progress, 4),
        }
        if job.status == Status.PROCESSING:
            body["segments"] = job.segments
        if job.error is not None:
            body["error"] = job.error
        if with_result and job.has_result:
            body["result"] = store.read_result(job.id)
        return body

    def get_job_or_404(job_id: str) -> Job:
        job = store.get_job(job_id)
        if job is None:
            raise ApiError(404, "job_not_found", f"no job with id {job_id} on this server")
        return job

    def installed_models() -> list[str]:
        return models.installed(settings.models_dir)

    def upload_id_from_url(url: str) -> str:
        parts = urlsplit(url)
        match = _UPLOAD_PATH_RE.match(parts.path)
        query = parse_qs(parts.query)
        try:
            if match is None:
                raise SignatureError("not an upload URL")
            signer.verify(
                "PUT",
                parts.path,
                query.get("expires", [None])[0],
                query.get("sig", [None])[0],
                check_expiry=False,
            )
        except SignatureError:
            raise ApiError(
                400,
                "foreign_url",
                "the local server only transcribes files uploaded to it: get a URL from "
                f"POST {UPLOAD_URL_PATH}, PUT the file there, then submit that URL",
            ) from None
        assert match is not None
        return match.group(1)

    # -- step 1 -------------------------------------------------------------------------------
    @app.post(
        UPLOAD_URL_PATH,
        status_code=201,
        response_model=UploadUrlResponse,
        dependencies=auth,
        responses=_errors_doc(400),
        summary="Step 1: get a signed URL to upload a file to",
    )
    async def create_upload_url(
        request: Request,
        extension: Annotated[
            str | None, Query(description="A hint only (e.g. mp3): decoding goes by content.")
        ] = None,
    ) -> dict[str, Any]:
        if extension is not None and not _EXTENSION_RE.match(extension):
            raise ApiError(
                400, "invalid_extension", "extension must be 1-10 letters or digits, e.g. mp3"
            )
        upload_id = store.create_upload(extension.lower() if extension else None)
        path = UPLOAD_PUT_PATH.format(upload_id=upload_id)
        return {
            "uploadUrl": {
                "PUT": base_url(request) + signer.sign("PUT", path, settings.upload_url_ttl)
            }
        }

    # -- step 2 -------------------------------------------------------------------------------
    @app.put(
        UPLOAD_PUT_PATH,
        response_model=UploadDone,
        responses={code: {"model": ErrorBody} for code in (400, 403, 404, 413, 507)},
        summary="Step 2: upload the raw bytes (the signed URL is the credential)",
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            }
        },
    )
    async def put_upload(
        request: Request,
        upload_id: Annotated[str, Path(pattern=_ID_PATTERN)],
        expires: Annotated[str | None, Query()] = None,
        sig: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        try:
            signer.verify("PUT", request.url.path, expires, sig)
        except SignatureError as exc:
            raise ApiError(403, "bad_signature", str(exc)) from None
        if store.get_upload(upload_id) is None:
            raise ApiError(404, "upload_not_found", "this upload URL is unknown or was deleted")
        limit = settings.max_upload_bytes
        too_big = ApiError(
            413, "too_large", f"the file is larger than this server's limit of {limit} bytes"
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refuse before reading a byte
            raise too_big
        final = store.upload_path(upload_id)
        partial = final.with_name(f"{final.name}.{os.getpid()}.{time.monotonic_ns()}.part")
        size = 0
        try:
            with partial.open("wb") as out:
                os.chmod(partial, 0o600)
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise too_big
                    out.write(chunk)
            os.replace(partial, final)
        except ClientDisconnect:
            raise ApiError(
                400, "upload_interrupted", "the upload was interrupted; PUT the file again"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise ApiError(
                507,
                "disk_full",
                "the server's disk is full; free space in its data dir, then PUT the file again",
            ) from None
        finally:
            partial.unlink(missing_ok=True)
        store.mark_uploaded(upload_id, size)
        return {"size": size}

    # -- step 3 -------------------------------------------------------------------------------
    @app.post(
        SUBMIT_PATH.replace("{model}", "{model:path}"),  # an explicit model id has a slash
        status_code=202,
        response_model=SubmitResponse,
        response_model_exclude_unset=True,
        dependencies=auth,
        responses={
            **_errors_doc(400, 404, 429),
            429: {"model": ErrorBody, "description": "Queue full; see Retry-After."},
        },
        summary="Step 3: submit a transcription job",
    )
    async def submit(
        request: Request,
        model: str,
        body: SubmitRequest,
        service_tier: Annotated[str, Query(alias="serviceTier")] = "cpuflex",
        idempotency_key: Annotated[
            str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=200)
        ] = None,
    ) -> dict[str, Any]:
        if service_tier not in TIERS:
            raise ApiError(400, "invalid_tier", f"serviceTier must be one of: {', '.join(TIERS)}")
        info = models.resolve(model, settings.models_dir)
        if info is None:
            raise ApiError(
                404,
                "model_not_found",
                f"model 'whisper-{model}' is not installed on this server; installed: "
                + (", ".join(installed_models()) or "none"),
            )
        try:
            params = validate_input(body.input)
            check_model_can(params, model, info.english_only)
        except ParamError as exc:
            raise ApiError(400, "invalid_input", str(exc)) from None
        upload_id = upload_id_from_url(body.URL)
        upload = store.get_upload(upload_id)
        if upload is None or upload.size is None:
            raise ApiError(
                400, "not_uploaded", "nothing was uploaded to this URL: PUT the file to it first"
            )
        if idempotency_key is not None:
            existing = store.job_by_key(idempotency_key)
            if existing is not None:
                return {"response": job_body(request, existing)}
        counts = store.counts()
        if counts.get(Status.PENDING, 0) + counts.get(Status.ACCEPTED, 0) >= settings.max_queue:
            raise ApiError(
                429,
                "queue_full",
                f"the queue is full ({settings.max_queue} jobs waiting); retry later",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        job, created = store.create_job(model, params, upload_id, idempotency_key)
        if created:
            supervisor.wake()
        return {"response": job_body(request, job)}

    # -- step 4 -------------------------------------------------------------------------------
    @app.get(
        JOB_PATH,
        response_model=JobBody,
        response_model_exclude_unset=True,
        dependencies=auth,
        responses=_errors_doc(403, 404),
        summary="Step 4: poll a job (signed URL); ?wait=SECONDS long-polls",
    )
    async def poll(
        request: Request,
        job_id: Annotated[str, Path(pattern=_ID_PATTERN)],
        wait: Annotated[
            float | None,
            Query(
                ge=0, description=f"Long-poll up to this many seconds (<= {MAX_LONG_POLL_SECONDS})."
            ),
        ] = None,
        until: Annotated[
            Literal["change", "done"],
            Query(
                description="With wait: answer on any status change (change) or only once the "
                "job has finished (done)."
            ),
        ] = "change",
        expires: Annotated[str | None, Query()] = None,
        sig: Annotated[str | None, Query()] = None,
    ) -> dict[str, Any]:
        # The Bearer key alone is enough to read a job; a signature, when given, must be valid.
        if expires is not None or sig is not None:
            try:
                signer.verify("GET", request.url.path, expires, sig)
            except SignatureError as exc:
                raise ApiError(403, "bad_signature", str(exc)) from None
        job = get_job_or_404(job_id)
        if wait and not Status(job.status).terminal:
            deadline = time.monotonic() + min(wait, MAX_LONG_POLL_SECONDS)
            initial = job.status

            def answer_now(current: Job) -> bool:
                if until == "done":
                    return Status(current.status).terminal
                return current.status != initial

            while not answer_now(job):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or await request.is_disconnected():
                    break
                with changes.subscribe(job_id) as event:
                    job = get_job_or_404(job_id)
                    if answer_now(job):
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(event.wait(), min(remaining, 5.0))
                job = get_job_or_404(job_id)
        return job_body(request, job)

    # -- extensions ---------------------------------------------------------------------------
    @app.get(
        JOBS_PATH,
        response_model=JobList,
        response_model_exclude_unset=True,
        dependencies=auth,
        responses=_errors_doc(400),
        summary="List jobs, newest first (without results)",
    )
    async def list_jobs(
        request: Request,
        status: Annotated[Status | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        jobs = store.list_jobs(status.value if status else None, limit)
        return {"jobs": [job_body(request, j, with_result=False) for j in jobs]}

    @app.post(
        JOB_CANCEL_PATH,
        response_model=JobBody,
        response_model_exclude_unset=True,
        dependencies=auth,
        responses=_errors_doc(404, 409),
        summary="Cancel a queued or processing job",
    )
    async def cancel(
        request: Request, job_id: Annotated[str, Path(pattern=_ID_PATTERN)]
    ) -> dict[str, Any]:
        job = get_job_or_404(job_id)
        if Status(job.status).terminal:
            raise ApiError(409, "already_finished", f"job {job_id} already ended ({job.status})")
        cancelled = store.cancel(job_id)
        if cancelled is None:
            raise ApiError(404, "job_not_found", f"no job with id {job_id} on this server")
        changes.notify(job_id)
        return job_body(request, cancelled)

    @app.delete(
        JOB_PATH,
        status_code=204,
        response_class=Response,
        dependencies=auth,
        responses=_errors_doc(404, 409),
        summary="Delete a finished job, its upload and its result",
    )
    async def delete(job_id: Annotated[str, Path(pattern=_ID_PATTERN)]) -> Response:
        job = get_job_or_404(job_id)
        if job.status == Status.PROCESSING:
            raise ApiError(
                409, "job_running", f"job {job_id} is processing: cancel it before deleting it"
            )
        store.delete_job(job_id)
        changes.notify(job_id)
        return Response(status_code=204)

    @app.get(
        HEALTH_PATH,
        response_model=HealthResponse,
        dependencies=auth,
        responses=_errors_doc(),
        summary="Server version, installed models and queue depth",
    )
    async def health() -> dict[str, Any]:
        counts = store.counts()
        return {
            "status": "ok",
            "version": __version__,
            "models": installed_models(),
            "loadedModels": models.loaded_names(supervisor.loaded_paths, settings.models_dir),
            "device": settings.device_plan.device,
            "queue": {
                "pending": counts.get(Status.PENDING, 0) + counts.get(Status.ACCEPTED, 0),
                "processing": counts.get(Status.PROCESSING, 0),
            },
            "maxUploadBytes": settings.max_upload_bytes,
            "longPoll": True,
        }

    return app
