"""The server's error codes: one table, code -> HTTP status.

The job service raises :class:`ServiceError` with a code from :data:`ERRORS`; the API layer
answers ``{"error": {"code", "message"}}`` with the status the table gives. A new protocol
router may translate the same codes into its own body shape.
"""

from __future__ import annotations

from collections.abc import Mapping

ERRORS: Mapping[str, int] = {
    # the request itself
    "invalid_request": 400,
    "invalid_extension": 400,
    "invalid_tier": 400,
    "invalid_input": 400,
    "foreign_url": 400,
    "not_uploaded": 400,
    "upload_interrupted": 400,
    "invalid_webhook": 400,
    "invalid_file_url": 400,
    "unauthorized": 401,
    "bad_signature": 403,
    "not_found": 404,
    "upload_not_found": 404,
    "job_not_found": 404,
    "model_not_found": 404,
    "method_not_allowed": 405,
    "already_finished": 409,
    "job_running": 409,
    "upload_used": 409,
    "not_ready": 409,
    "job_cancelled": 410,
    "too_large": 413,
    "job_failed": 422,
    "queue_full": 429,
    "outbound_busy": 429,
    # the server
    "internal_error": 500,
    "unavailable": 503,
    "disk_full": 507,
}


class ServiceError(Exception):
    """An error a client can act on; ``code`` is a key of :data:`ERRORS`."""

    def __init__(self, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        if code not in ERRORS:
            raise ValueError(f"unknown error code {code!r}")
        self.code, self.message, self.headers = code, message, dict(headers or {})

    @property
    def status(self) -> int:
        return ERRORS[self.code]
