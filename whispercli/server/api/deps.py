"""Dependencies of the routes, all read from ``app.state`` (set once by ``create_app``)."""

from __future__ import annotations

import hmac
import re
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from whispercli.protocol import JOB_PATH, UPLOAD_PUT_PATH, UPLOAD_URL_PATH
from whispercli.server.api.schemas import ErrorBody
from whispercli.server.api.signed_urls import SignatureError, Signer
from whispercli.server.jobs.errors import ERRORS, ServiceError
from whispercli.server.jobs.runner import Runner
from whispercli.server.jobs.service import JobService
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.store import JobRecord

ID_PATTERN = r"^[0-9a-f]{32}$"
_UPLOAD_PATH_RE = re.compile(r"^/v1/input/uploads/([0-9a-f]{32})$")


class Links:
    """The signed URLs of the Tiyaro protocol: upload URLs (PUT) and poll URLs (GET), on the
    server's configured base URL (``--public-url``, else its bind address): a request's
    ``Host`` header never makes its way into them."""

    def __init__(self, signer: Signer, settings: ServerSettings) -> None:
        self.signer = signer
        self.settings = settings
        self.base_url = settings.base_url

    def upload_url(self, upload_id: str) -> str:
        path = UPLOAD_PUT_PATH.format(upload_id=upload_id)
        return self.base_url + self.signer.sign("PUT", path, self.settings.upload_url_ttl)

    def poll_url(self, job: JobRecord) -> str:
        return self.poll_url_at(self.base_url, job)

    def poll_url_at(self, base_url: str, job: JobRecord) -> str:
        """The poll URL on ``base_url`` (a webhook's body: the base URL of its submit)."""
        path = JOB_PATH.format(job_id=job.id)
        ttl = self.settings.effective_poll_url_ttl
        return base_url + self.signer.sign("GET", path, ttl, now=job.accepted_at)

    def verify(self, method: str, path: str, expires: str | None, sig: str | None) -> None:
        try:
            self.signer.verify(method, path, expires, sig)
        except SignatureError as exc:
            raise ServiceError("bad_signature", str(exc)) from None

    def upload_id(self, url: str) -> str:
        """The upload id of one of our upload URLs (expired or not): ``bad_signature`` for one
        of ours that was altered (refused as its PUT would be), else ``foreign_url``."""
        parts = urlsplit(url)
        ours = urlsplit(self.base_url)
        path = parts.path
        if ours.path and path.startswith(ours.path + "/"):  # --public-url with a path prefix
            path = path[len(ours.path) :]
        match = _UPLOAD_PATH_RE.match(path)
        query = parse_qs(parts.query)
        try:
            if match is None:
                raise SignatureError("not an upload URL")
            self.signer.verify(
                "PUT",
                path,
                query.get("expires", [None])[0],
                query.get("sig", [None])[0],
                check_expiry=False,
            )
        except SignatureError as exc:
            if match is not None and parts.netloc == ours.netloc:
                raise ServiceError("bad_signature", f"upload URL: {exc}") from None
            raise ServiceError(
                "foreign_url",
                "the local server only transcribes files uploaded to it: get a URL from "
                f"POST {UPLOAD_URL_PATH}, PUT the file there, then submit that URL",
            ) from None
        assert match is not None
        return match.group(1)


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def _runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


def _links(request: Request) -> Links:
    links: Links = request.app.state.links
    return links


Service = Annotated[JobService, Depends(_service)]
UrlSigner = Annotated[Links, Depends(_links)]
JobRunner = Annotated[Runner, Depends(_runner)]

_bearer = HTTPBearer(auto_error=False, description="The key in the server's api-key file.")


def key_matches(authorization: str, expected: str) -> bool:
    """``Authorization: Bearer <key>`` with the server's key (constant-time)."""
    scheme, given = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def key_error() -> ServiceError:
    return ServiceError(
        "unauthorized",
        "missing or wrong API key: send 'Authorization: Bearer <key>' with the key "
        "from the server's api-key file",
        {"WWW-Authenticate": "Bearer"},
    )


def require_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The key check of a route (``dependencies=AUTH``); :mod:`.gate` makes the same check
    before the route's body is read."""
    given = credentials.credentials if credentials else ""
    if not key_matches(f"Bearer {given}", request.app.state.api_key):
        raise key_error()


AUTH = [Depends(require_key)]


def errors_doc(*codes: str, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes a route may answer (401 when it needs the key)."""
    statuses = {ERRORS[c] for c in codes} | ({401} if auth else set())
    return {status: {"model": ErrorBody} for status in sorted(statuses)}
