"""One HTTP request to a URL the guard checked, connecting only to the checked address.

The Host header and TLS server name stay the URL's host; redirects are not followed (a 3xx is
a failed attempt); each socket operation times out after ``TIMEOUT`` seconds, and a
:class:`Watchdog` bounds the whole exchange (a peer that trickles its status line, headers or
body a byte at a time never times a socket operation out); a webhook's response body is read
(a little) and dropped, never stored.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from whispercli.server.webhooks import guard

TIMEOUT = 10.0
"""Seconds one socket operation (connect, a read, a write) may take."""
ATTEMPT_SECONDS = 15.0
"""Seconds a whole webhook attempt may take, however the receiver paces its bytes."""
_DRAIN_BYTES = 64 * 1024


class Watchdog:
    """Ends an exchange that runs past ``seconds``: the socket of the connection it watches is
    shut down, so a blocking read in any phase returns at once. ``fire`` ends it now."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self.fire)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def watch(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
        if self.fired:
            self._shut(conn)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            conn = self._conn
        self._timer.cancel()
        if conn is not None:
            self._shut(conn)

    @staticmethod
    def _shut(conn: http.client.HTTPConnection) -> None:
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


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
    watchdog: Watchdog | None = None,
) -> tuple[Outcome, http.client.HTTPResponse | None, http.client.HTTPConnection | None]:
    """Check ``url``, connect to its checked address and send; the caller closes the connection
    (and reads the body while ``watchdog``, if any, still watches it)."""
    try:
        target = guard.check(url, policy)
    except guard.RefusedUrl as exc:
        return Outcome(None, f"refused: {exc}"), None, None
    last_error = "no address"
    kind = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    for address in target.addresses:
        if watchdog is not None and watchdog.fired:
            break
        conn = kind(target, address, timeout)
        if watchdog is not None:
            watchdog.watch(conn)
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
    if watchdog is not None and watchdog.fired:
        last_error = f"it took longer than {watchdog.seconds:g} s"
    return Outcome(None, last_error), None, None


def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: guard.Policy,
    *,
    timeout: float = TIMEOUT,
    watchdog: Watchdog | None = None,
) -> Outcome:
    """POST ``body`` within ``watchdog``'s time (default :data:`ATTEMPT_SECONDS`); the outcome
    only (the response body is drained and dropped)."""
    sent = {"Content-Type": "application/json", "User-Agent": "whispercli-webhooks", **headers}
    with watchdog or Watchdog(ATTEMPT_SECONDS) as dog:
        outcome, response, conn = request(
            "POST", url, policy, body=body, headers=sent, timeout=timeout, watchdog=dog
        )
        if conn is not None:
            try:
                if response is not None:
                    response.read(_DRAIN_BYTES)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
    return outcome
