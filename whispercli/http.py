"""The one HTTP core: one ``requests.Session``, explicit timeouts, safe retries, and every
failure mapped to a ``WhisperCliError`` a person can act on.

Retries, and who does them:

* urllib3's ``Retry`` (mounted on the session) retries failed connects for every method
  (nothing reached the server), with short back-offs.
* Hand-rolled in ``HttpCore.request``: (1) GET/HEAD/DELETE, POST with an ``Idempotency-Key``
  (or flagged ``idempotent``) and PUT of a body re-created from a factory (the upload re-opens
  the file at offset 0) on 429/502/503/504, after ``Retry-After`` (capped) or with exponential
  backoff — urllib3 retries per method, not per request, cannot rewind our counting reader, and
  would sleep whatever ``Retry-After`` a server names, past every deadline; (2) for those, a
  connection dropped or reset mid-request, a read timeout, or an answer cut short mid-body —
  urllib3 does not see failures while requests reads the body.

One deadline governs every wait: the request's budget, and a caller's own deadline when it has
one (``with deadline(t):``, e.g. ``wait --timeout``): after the first try, no retry starts and
no sleep is taken past the earlier of the two.

The API key goes only to the endpoint's own origin (scheme, host, port; loopback names count
as one host). A URL a server hands out on another origin is fetched without the key when it is
signed (its signature is its credential), and refused otherwise: a server must not be able to
send our key elsewhere.

Every request has a time budget, ``total_timeout`` (``WHISPERCLI_HTTP_TIMEOUT``, 60 s): each try
waits at most a third of it for an answer (longer when a request says so: a long-poll, a big
upload), no try starts once it is spent, and each retry is logged as a warning (the CLI prints
it on stderr), so a server that accepts and never answers costs about a minute, not four.

Nothing here logs a key, and URLs are printed with their ``sig=`` redacted.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import ChunkedEncodingError
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.retry import Retry

from whispercli.envvars import env_seconds
from whispercli.errors import (
    AuthError,
    NotFoundError,
    UnreachableError,
    WhisperCliError,
    seconds_text,
)
from whispercli.protocol import is_http_url
from whispercli.version import __version__

log = logging.getLogger("whispercli.http")

CONNECT_TIMEOUT = 5.0
TOTAL_TIMEOUT = 60.0
TOTAL_TIMEOUT_ENV = "WHISPERCLI_HTTP_TIMEOUT"
RETRY_STATUSES = frozenset({429, 502, 503, 504})
SAFE_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})
MAX_RETRIES = 3
BACKOFF = 0.5
MAX_RETRY_AFTER = 60.0

_SIG_RE = re.compile(r"(?i)([?&](?:sig|signature|x-amz-signature|token)=)[^&#\s]*")


def redact_url(url: str) -> str:
    """``url`` with signature-like query values replaced, safe to print or log."""
    return _SIG_RE.sub(r"\1REDACTED", url)


def is_signed(url: str) -> bool:
    """Whether ``url`` carries its own credential (a signature or token in its query)."""
    return _SIG_RE.search(url) is not None


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the port made explicit; loopback names (localhost,
    127.0.0.0/8, ::1) are one host, so the embedded server's own URLs match however it is
    reached."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return scheme, "loopback" if loopback else host, port


_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "whispercli_http_deadline", default=None
)


@contextlib.contextmanager
def deadline(at: float | None) -> Iterator[None]:
    """Requests made inside take no try and no sleep past ``at`` (``time.monotonic()``)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


Body = bytes | str | Any
BodyFactory = Callable[[], Body]


class HttpCore:
    """Talks to one base URL with one session. ``api_key`` may be a callable (read lazily)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | Callable[[], str | None] | None,
        *,
        key_source: str = "",
        connect_timeout: float = CONNECT_TIMEOUT,
        read_timeout: float | None = None,
        total_timeout: float | None = None,
        max_retries: int = MAX_RETRIES,
        backoff: float = BACKOFF,
        local_hint: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.key_source = key_source
        self.total_timeout = total_timeout or total_timeout_from_env()
        """Seconds one request may take, retries included (a longer ``read_timeout`` wins)."""
        self.connect_timeout = min(connect_timeout, self.total_timeout)
        self.read_timeout = read_timeout or self.total_timeout / 3
        """Seconds one try waits for an answer, unless a request gives its own."""
        self.max_retries = max_retries
        self.backoff = backoff
        self.local_hint = local_hint
        self.answered = False
        """True once any HTTP answer came back (the server was up at some point)."""
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"whispercli/{__version__}"
        retry = Retry(
            total=max_retries,
            connect=2,
            read=0,  # read failures (timeouts, drops mid-answer) are retried in request()
            status=0,  # statuses too, under one deadline (see the module docstring)
            other=0,
            allowed_methods=SAFE_METHODS,
            backoff_factor=backoff / 2,
            backoff_max=2,
            respect_retry_after_header=False,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def api_key(self) -> str | None:
        key = self._api_key() if callable(self._api_key) else self._api_key
        self._api_key = key  # resolve once
        return key

    def url(self, path_or_url: str) -> str:
        if is_http_url(path_or_url):
            return path_or_url
        return f"{self.base_url}{path_or_url}"

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """Send one request and return a 2xx response, or raise a ``WhisperCliError``.

        Keyword arguments are those of ``_exchange``.
        """
        return self._exchange(method, path_or_url, decode=False, **kwargs)[0]

    def json(self, method: str, path_or_url: str, **kwargs: Any) -> Any:
        """``request`` and decode the JSON body (an empty 204 gives ``None``). A body that is
        cut short or not JSON is asked for again when the request is safe to resend."""
        return self._exchange(method, path_or_url, decode=True, **kwargs)[1]

    def _exchange(
        self,
        method: str,
        path_or_url: str,
        *,
        decode: bool,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        body: BodyFactory | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        idempotent: bool = False,
        read_timeout: float | None = None,
        stream: bool = False,
    ) -> tuple[requests.Response, Any]:
        """The request loop: retries, error mapping, and (``decode``) the JSON body.

        ``body`` is a factory so that a retried PUT sends the same bytes from the start.
        ``idempotent`` marks a POST/PUT as safe to retry (an Idempotency-Key is sent, or the
        operation has no side effect that matters). ``stream`` leaves a 2xx body unread
        (``iter_content``), for downloads.
        """
        url = self.url(path_or_url)
        hdrs = dict(headers or {})
        if auth and self._key_may_go_to(url):
            key = self.api_key()
            if key:
                hdrs["Authorization"] = f"Bearer {key}"
        safe = method.upper() in SAFE_METHODS
        may_resend = safe or idempotent or any(k.lower() == "idempotency-key" for k in hdrs)
        wait = read_timeout or self.read_timeout
        deadline = time.monotonic() + max(self.total_timeout, wait)
        caller = _deadline.get()
        # The first try is always made in full; retries and their sleeps must end by both.
        retry_deadline = deadline if caller is None else min(deadline, caller)
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            timeout = (self.connect_timeout, max(0.001, min(wait, left)))
            try:
                resp = self._send(method, url, params, json, body, hdrs, timeout, stream)
            except (requests.ConnectionError, requests.Timeout, ChunkedEncodingError) as exc:
                never_connected = _never_connected(exc)
                if isinstance(exc, requests.ReadTimeout) or "Read timed out" in str(exc):
                    reason = f"it did not answer within {seconds_text(timeout[1])}"
                else:
                    reason = _reason(exc)
                if (
                    may_resend
                    and not never_connected
                    and attempt < self.max_retries
                    and self._sleep(attempt + 1, None, retry_deadline, reason)
                ):
                    attempt += 1
                    continue
                raise self._unreachable(url, reason, attempt + 1) from exc
            except requests.RequestException as exc:
                raise WhisperCliError(
                    f"request to {redact_url(url)} failed: {_reason(exc)}"
                ) from exc
            if (
                may_resend
                and resp.status_code in RETRY_STATUSES
                and attempt < self.max_retries
                and self._sleep(
                    attempt + 1,
                    resp.headers.get("Retry-After"),
                    retry_deadline,
                    f"HTTP {resp.status_code}",
                )
            ):
                attempt += 1
                continue
            if resp.status_code >= 400:
                raise self._error(resp, url, auth)
            if not decode or resp.status_code == 204:
                return resp, None
            try:
                if not resp.content:
                    raise ValueError("empty body")
                return resp, resp.json()
            except ValueError:
                # Empty, or JSON cut short: a dropped answer. Anything else (an HTML page from
                # a proxy, say) will not get better by asking again.
                truncated = not resp.content or "json" in resp.headers.get("Content-Type", "")
                if (
                    truncated
                    and may_resend
                    and attempt < self.max_retries
                    and self._sleep(attempt + 1, None, retry_deadline, "its answer was cut short")
                ):
                    attempt += 1
                    continue
                raise self._not_json(method, url, resp) from None

    # -- internals -------------------------------------------------------------------------

    def _key_may_go_to(self, url: str) -> bool:
        """True for the endpoint's own origin; False (no key) for a signed URL elsewhere;
        anything else on another origin is refused before any connection is made."""
        if origin(url) == origin(self.base_url):
            return True
        if is_signed(url):
            return False
        raise WhisperCliError(
            f"the server at {redact_url(self.base_url)} sent a URL on another host or scheme "
            f"({redact_url(url)}); whispercli sends its API key only to the endpoint itself",
            hint="if that host is the same service, point --url (or the profile's url) at it",
        )

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        body: BodyFactory | None,
        headers: dict[str, str],
        timeout: tuple[float, float],
        stream: bool = False,
    ) -> requests.Response:
        start = time.monotonic()
        data = body() if body is not None else None
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                headers=headers,
                timeout=timeout,
                stream=stream,
            )
        finally:
            close = getattr(data, "close", None)
            if callable(close):
                close()
        self.answered = True
        log.debug(
            "%s %s -> %s in %.3f s",
            method,
            redact_url(resp.url),
            resp.status_code,
            time.monotonic() - start,
        )
        return resp

    def _not_json(self, method: str, url: str, resp: requests.Response) -> WhisperCliError:
        ctype = resp.headers.get("Content-Type", "unknown type")
        return WhisperCliError(
            f"the server at {self.base_url} answered {method} {redact_url(url)} with something "
            f"that is not JSON (HTTP {resp.status_code}, {ctype}, {len(resp.content)} bytes)",
            hint="check --url: is it a whispercli or Tiyaro-compatible endpoint?",
        )

    def _sleep(self, attempt: int, retry_after: str | None, deadline: float, why: str) -> bool:
        """Wait before try ``attempt`` + 1 and say so; False (no wait) when the request's
        time budget would be spent before that try could get an answer."""
        delay = self.backoff * (2 ** (attempt - 1))
        if retry_after:
            # An HTTP date is not worth parsing: fall back to our own backoff.
            with contextlib.suppress(ValueError):
                delay = min(float(retry_after), MAX_RETRY_AFTER)
        left = deadline - time.monotonic() - delay
        if left < min(1.0, self.total_timeout / 10):
            return False
        log.warning(
            "the server at %s: %s; retrying in %.3g s (try %d of %d, %.3g s left)",
            redact_url(self.base_url), why, delay, attempt + 1, self.max_retries + 1, left,
        )  # fmt: skip
        time.sleep(delay)
        return True

    def _unreachable(self, url: str, reason: str, tries: int = 1) -> UnreachableError:
        hint = (
            "start it with `whispercli server start`, or point --url / WHISPERCLI_URL elsewhere"
            if self.local_hint
            else "check --url / WHISPERCLI_URL and the network"
        )
        after = f" (after {tries} tries)" if tries > 1 else ""
        return UnreachableError(
            f"cannot reach the server at {redact_url(self.base_url)}: {reason}{after}", hint=hint
        )

    def _error(self, resp: requests.Response, url: str, auth: bool) -> WhisperCliError:
        code, message = _server_code(resp), _server_message(resp)
        error = self._classify(resp, url, auth, code, message)
        error.code, error.reply = code, message
        return error

    def _classify(
        self, resp: requests.Response, url: str, auth: bool, code: str | None, message: str
    ) -> WhisperCliError:
        status = resp.status_code
        where = f"{resp.request.method} {redact_url(url)}"
        signed = "sig=" in url or code == "bad_signature"
        if status == 401 or (status == 403 and auth and not signed):
            return AuthError(
                f"the server at {self.base_url} rejected the API key "
                f"(key from {self.key_source or 'nowhere'}): {message}",
                hint="set the key with --api-key, WHISPERCLI_API_KEY or "
                "`whispercli config set api_key KEY`",
                status=status,
            )
        if status == 403:
            return AuthError(
                f"the server refused a signed URL ({where}): {message}",
                hint="signed URLs expire: upload or submit again",
                status=status,
            )
        if status == 404:
            return NotFoundError(f"not found: {message}", status=status)
        later = resp.headers.get("Retry-After") if status in RETRY_STATUSES else None
        if later:
            message += f" (it asks to retry after {later[:40]} s)"
        if status >= 500:
            return WhisperCliError(
                f"the server at {self.base_url} failed (HTTP {status}): {message}",
                hint="try again later; the server's log may say more",
                status=status,
            )
        return WhisperCliError(f"{message} (HTTP {status})", status=status)


def _server_code(resp: requests.Response) -> str | None:
    """The server's ``error.code`` (``bad_signature``, ...), when it sent one."""
    try:
        err = resp.json().get("error")
    except (ValueError, AttributeError):
        return None
    code = err.get("code") if isinstance(err, dict) else None
    return code if isinstance(code, str) else None


def total_timeout_from_env() -> float:
    """``WHISPERCLI_HTTP_TIMEOUT`` in seconds (a positive number), else ``TOTAL_TIMEOUT``."""
    return env_seconds(TOTAL_TIMEOUT_ENV, TOTAL_TIMEOUT, error=WhisperCliError)


def _server_message(resp: requests.Response) -> str:
    """The server's ``error.message`` (or FastAPI's ``detail``), else the reason phrase."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, dict) and isinstance(err.get("message"), dict):  # Eden AI's 400
            return "; ".join(f"{k}: {_joined(v)}" for k, v in err["message"].items())
        if isinstance(err, str):
            return err
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return str(detail[0].get("msg", detail[0]))
        for key in ("message", "details"):  # "details": Eden AI's 404
            if isinstance(body.get(key), str):
                return str(body[key])
    return resp.reason or f"HTTP {resp.status_code}"


def _joined(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _never_connected(exc: BaseException) -> bool:
    """True when no connection was made (refused, DNS, connect timeout): urllib3 has already
    retried those, and nothing reached the server."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        cur = stack.pop()
        if cur is None or id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, NewConnectionError | NameResolutionError | ConnectTimeoutError):
            return True
        stack.extend([cur.__cause__, cur.__context__, getattr(cur, "reason", None)])
        stack.extend(a for a in cur.args if isinstance(a, BaseException))
    return False


def _reason(exc: BaseException) -> str:
    """A short cause for a connection failure, without the URL (we print that ourselves)."""
    text = str(exc)
    for needle, short in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("Temporary failure in name resolution", "unknown host (DNS)"),
        ("timed out", "timed out"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "the server closed the connection"),
        ("CERTIFICATE_VERIFY_FAILED", "TLS certificate verification failed"),
    ):
        if needle in text:
            return short
    return type(exc).__name__
