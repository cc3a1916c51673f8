"""One HTTP request to a URL the guard checked, connecting only to the checked address.

The Host header and TLS server name stay the URL's host; redirects are not followed (a 3xx is
a failed attempt); each socket operation times out after ``TIMEOUT`` seconds; the response body
is read (a little) and dropped, never stored.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from whispercli.server.webhooks import guard

TIMEOUT = 10.0
_DRAIN_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    status: int | None
    """The HTTP status, or None when no response came (refused, unreachable, timed out)."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _connect(address: str, port: int, timeout: float) -> socket.socket:
    family = (
        socket.AF_INET6
        if ipaddress.ip_address(address.split("%", 1)[0]).version == 6
        else socket.AF_INET
    )
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
    except BaseException:
        sock.close()
        raise
    return sock


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, target: guard.Target, address: str, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = _connect(self._address, self.port, self.timeout)  # type: ignore[arg-type]


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, target: guard.Target, address: str, timeout: float) -> None:
        super().__init__(
            target.host, target.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = address

    def connect(self) -> None:
        raw = _connect(self._address, self.port, self.timeout)  # type: ignore[arg-type]
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)  # type: ignore[attr-defined]


def request(
    method: str,
    url: str,
    policy: guard.Policy,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> tuple[Outcome, http.client.HTTPResponse | None, http.client.HTTPConnection | None]:
    """Check ``url``, connect to its checked address and send; the caller closes the connection."""
    try:
        target = guard.check(url, policy)
    except guard.RefusedUrl as exc:
        return Outcome(None, f"refused: {exc}"), None, None
    last_error = "no address"
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    for address in target.addresses:
        conn = kind(target, address, timeout)
        try:
            conn.request(method, target.path, body=body, headers=dict(headers or {}))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            last_error = f"{type(exc).__name__}: {exc}"
            continue
        if 300 <= response.status < 400:
            conn.close()
            return Outcome(response.status, "redirects are not followed"), None, None
        return Outcome(response.status), response, conn
    return Outcome(None, last_error), None, None


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: guard.Policy,
    *,
    timeout: float = TIMEOUT,
) -> Outcome:
    """POST ``body``; the outcome only (the response body is drained and dropped)."""
    sent = {"Content-Type": "application/json", "User-Agent": "whispercli-webhooks", **headers}
    outcome, response, conn = request("POST", url, policy, body=body, headers=sent, timeout=timeout)
    if conn is not None:
        try:
            if response is not None:
                response.read(_DRAIN_BYTES)
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
    return outcome
