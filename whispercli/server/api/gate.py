"""The gate every HTTP request passes before its route runs: the API key, then the body cap.

FastAPI reads and parses a route's body before it runs the route's dependencies, so a key
check in a dependency alone comes after the whole body is in memory. This ASGI middleware
runs first and enforces what the app's OpenAPI schema documents, for every route of the app,
routers added later included:

* an operation documented with ``security`` (a route with ``dependencies=AUTH``, see
  :mod:`.deps`) gets its 401 here, before a byte of its body is read (the dependency still
  runs). An operation documented without it (the signed upload PUT) takes no key. A path no
  operation documents needs the key too, except the docs pages (``public_paths``);
* every body is capped: a ``Content-Length`` over the operation's limit is a 413 at once, and
  a body that goes past it while it is read ends in a 413 there (nothing more is read).

An operation takes a JSON body of at most :data:`DEFAULT_MAX_BODY` unless its route declares
another limit with ``openapi_extra=body_limit(...)``: a number of bytes, or :data:`UPLOAD`
(the server's ``--max-upload-mb`` plus room for a form around the file) or
:data:`UPLOAD_BASE64` (the same file as base64 in JSON, at most :data:`MAX_BASE64_BODY`). The
limit shows in the schema as ``x-body-limit``. A protocol whose errors have another shape
registers it in :data:`ERROR_SHAPES` and declares it with ``openapi_extra=error_shape(name)``:
the gate's 401 and 413 then take that shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whispercli.server.api.deps import key_error, key_matches
from whispercli.server.api.errors import error_response
from whispercli.server.defaults import MIB
from whispercli.server.settings import ServerSettings

LIMIT_KEY = "x-body-limit"
SHAPE_KEY = "x-error-shape"
ErrorShaper = Callable[[str, str, dict[str, str]], Response]
"""``(code, message, headers) -> the answer``: a refusal of the gate in a protocol's shape."""
ERROR_SHAPES: dict[str, ErrorShaper] = {}
"""The error shapes of protocols whose errors are not ours; a router module registers its
shaper here and its routes declare it with ``openapi_extra=error_shape(name)``."""
DEFAULT_MAX_BODY = 256 * 1024
"""A route that declares nothing takes a JSON body of at most this many bytes."""
UPLOAD = "upload"
UPLOAD_BASE64 = "upload-base64"
FORM_OVERHEAD = 1 * MIB
"""Room for the multipart fields and boundaries around an uploaded file."""
MAX_BASE64_BODY = 128 * MIB
"""A base64 JSON body (OctoAI's predict): about 96 MiB of audio, ten times OctoAI's cap."""
DRAIN_BYTES = 1 * MIB
"""A refused request whose body is at most this large keeps its connection (the server reads
the rest and drops it); a larger or unsized one is closed after the answer."""


def body_limit(limit: int | str) -> dict[str, Any]:
    """``openapi_extra`` declaring the largest body a route takes (see the module doc)."""
    if not (isinstance(limit, int) and limit > 0) and limit not in (UPLOAD, UPLOAD_BASE64):
        raise ValueError(f"a body limit is a byte count, UPLOAD or UPLOAD_BASE64, not {limit!r}")
    return {LIMIT_KEY: limit}


def error_shape(name: str) -> dict[str, Any]:
    """``openapi_extra`` naming the :data:`ERROR_SHAPES` entry the gate answers a route's
    refusals (401, 413) with."""
    return {SHAPE_KEY: name}


class BodyTooLarge(HTTPException):
    """The body went past its route's limit while it was read (a 413; the connection closes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than this route's limit of {limit} bytes",
            {"Connection": "close"},
        )


@dataclass(frozen=True)
class Rule:
    needs_key: bool
    max_body: int
    shape: str | None = None

    def refuse(self, code: str, message: str, headers: dict[str, str]) -> Response:
        if self.shape is not None:
            return ERROR_SHAPES[self.shape](code, message, headers)
        return error_response(code, message, headers)


class RequestGate:
    """The middleware: ``app.add_middleware(RequestGate, settings=..., public_paths=...)``;
    ``public_paths`` are paths (or prefixes, ending in ``/``) outside the schema that take no
    key: the docs pages and their files."""

    def __init__(self, app: ASGIApp, settings: ServerSettings, public_paths: Sequence[str]) -> None:
        self.app = app
        self.settings = settings
        self.public_paths = tuple(public_paths)
        self._table: list[tuple[re.Pattern[str], dict[str, Rule]]] | None = None
        self._lenient: list[tuple[re.Pattern[str], dict[str, Rule]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rule(scope["app"], scope["method"], scope["path"])
        headers = {k.lower(): v for k, v in scope["headers"]}
        if rule.needs_key and not key_matches(
            headers.get(b"authorization", b"").decode("latin-1"), scope["app"].state.api_key
        ):
            exc = key_error()
            await rule.refuse(exc.code, exc.message, _closing(exc.headers, headers))(
                scope, receive, send
            )
            return
        declared = _declared_length(headers)
        if declared is not None and declared > rule.max_body:
            too_large = BodyTooLarge(rule.max_body)
            await rule.refuse("too_large", too_large.detail, _closing({}, headers))(
                scope, receive, send
            )
            return
        await self.app(scope, _capped(receive, rule.max_body), send)

    def rule(self, app: Any, method: str, path: str) -> Rule:
        """The key and body rule of ``method path``."""
        if self._table is None:  # the schema is complete once the app serves
            self._table = self._build(app.openapi(), "[^/]+")
            self._lenient = self._build(app.openapi(), ".+")
        for pattern, rules in (*self._table, *self._lenient):  # {name:path}: the second pass
            if pattern.match(path) and method in rules:
                return rules[method]
        public = any(
            path.startswith(p) if p.endswith("/") else path == p for p in self.public_paths
        )
        return Rule(needs_key=not public, max_body=DEFAULT_MAX_BODY)

    def _build(
        self, schema: dict[str, Any], param: str
    ) -> list[tuple[re.Pattern[str], dict[str, Rule]]]:
        """(path regex, rule per method) of each documented path, its ``{params}`` matching
        ``param`` (the schema does not say which take slashes)."""
        table = []
        for template, operations in schema.get("paths", {}).items():
            rules = {
                method.upper(): Rule(
                    bool(op.get("security")), self._limit(op.get(LIMIT_KEY)), op.get(SHAPE_KEY)
                )
                for method, op in operations.items()
            }
            table.append((_path_pattern(template, param), rules))
        return table

    def _limit(self, declared: int | str | None) -> int:
        upload = self.settings.max_upload_bytes
        if declared == UPLOAD:
            return upload + FORM_OVERHEAD
        if declared == UPLOAD_BASE64:
            return min(MAX_BASE64_BODY, upload * 4 // 3 + 4 + FORM_OVERHEAD)
        return DEFAULT_MAX_BODY if declared is None else int(declared)


def _path_pattern(template: str, param: str) -> re.Pattern[str]:
    """``/v1/async/jobs/{job_id}`` -> a regex matching its concrete paths."""
    parts = re.split(r"\{[^}]*\}", template)
    return re.compile("^" + param.join(re.escape(part) for part in parts) + "$")


def _declared_length(headers: dict[bytes, bytes]) -> int | None:
    value = headers.get(b"content-length", b"").strip()
    return int(value) if value.isdigit() else None


def _closing(answer: dict[str, str] | None, request: dict[bytes, bytes]) -> dict[str, str]:
    """The headers of an answer given before the body was read: close the connection unless
    what is left of the body to read (and drop) is small."""
    out = dict(answer or {})
    declared = _declared_length(request)
    if b"transfer-encoding" in request or (declared is not None and declared > DRAIN_BYTES):
        out["Connection"] = "close"
    return out


def _capped(receive: Receive, limit: int) -> Receive:
    received = 0

    async def receive_capped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return receive_capped
