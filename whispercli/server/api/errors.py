"""Every failure answers ``{"error": {"code", "message"}}`` with the status of the one table
(:data:`whispercli.server.jobs.errors.ERRORS`), never a traceback."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from whispercli.server.jobs.errors import ERRORS, ServiceError
from whispercli.server.storage.store import StoreUnavailable

log = logging.getLogger("whispercli.server")

UNAVAILABLE_RETRY_SECONDS = 2
INTERNAL = "the server hit an unexpected error; see the server log"
UNAVAILABLE = "the server's database is unavailable; retry in a few seconds"


def error_response(
    code: str, message: str, headers: Mapping[str, str] | None = None, *, status: int | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status or ERRORS[code], headers=headers)


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.code, exc.message, exc.headers)


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return error_response("invalid_request", "invalid request: " + "; ".join(problems))


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
        exc.status_code, "http_error"
    )
    return error_response(code, str(exc.detail), exc.headers, status=exc.status_code)


async def _database(_: Request, exc: Exception) -> JSONResponse:
    # A handler of its own (not the catch-all below, which Starlette re-raises after
    # answering) so that a full disk is a 507 without a traceback in the log.
    if "database or disk is full" in str(exc):
        return error_response(
            "disk_full", "the server's disk is full; free space in its data dir and retry"
        )
    log.error("database error while serving a request", exc_info=exc)
    return error_response("internal_error", INTERNAL)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("storage unavailable: %s", exc)
    return error_response(
        "unavailable", UNAVAILABLE, {"Retry-After": str(UNAVAILABLE_RETRY_SECONDS)}
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=exc)
    return error_response("internal_error", INTERNAL)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sqlite3.OperationalError, _database)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
