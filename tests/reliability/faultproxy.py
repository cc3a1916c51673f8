"""A small fault-injecting TCP proxy for loopback tests (stdlib only, one thread per connection).

It sits between a client and a server and forwards bytes both ways, knowing just enough HTTP/1.1
to see where a request and its response begin: a client sends a request, the server answers, and
data that flows the other way after a turn starts a new message. Each message gets the request
line it belongs to, so a fault can target "the upload PUT" or "a poll GET" even on a keep-alive
connection.

Faults are :class:`Rule` objects armed with :meth:`FaultProxy.add`. A rule fires on up to
``times`` matching messages, then disarms:

* ``drop`` -- forward ``after_bytes`` bytes of the message, then close both sides (FIN);
* ``reset`` -- the same, but the client side is closed with ``SO_LINGER 0`` (RST);
* ``delay`` -- hold the message for ``seconds`` before forwarding it;
* ``respond`` -- (requests only) read and discard the request, answer it from the proxy itself
  with ``status`` and ``Retry-After: retry_after``, and close the connection; the server never
  sees the request.

Everything is bounded: a cap on concurrent connections, socket timeouts, and :meth:`stop`
closes every socket and joins every thread.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

Action = Literal["drop", "reset", "delay", "respond"]
Direction = Literal["up", "down"]

_REASONS = {429: "Too Many Requests", 502: "Bad Gateway", 503: "Service Unavailable"}
_MAX_HEAD = 64 * 1024


@dataclass
class Rule:
    """One fault. ``match`` is a substring of the request line ("PUT ", "GET /v1/async/jobs/")."""

    action: Action
    direction: Direction = "up"
    match: str = ""
    after_bytes: int = 0
    seconds: float = 0.0
    status: int = 503
    retry_after: int = 1
    times: int = 1
    fired: int = 0
    _reserved: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.action == "respond" and self.direction != "up":
            raise ValueError("a 'respond' rule answers requests: direction must be 'up'")

    @property
    def armed(self) -> bool:
        return self.fired + self._reserved < self.times


@dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    responded: int = 0
    dropped: int = 0
    reset: int = 0
    delayed: int = 0
    request_lines: list[str] = field(default_factory=list)


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``target``; inject the faults that are armed."""

    def __init__(
        self,
        target_port: int,
        *,
        target_host: str = "127.0.0.1",
        max_connections: int = 128,
        idle_timeout: float = 120.0,
    ) -> None:
        self.target = (target_host, target_port)
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.stats = Stats()
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, target_port: int) -> None:
        """Forward to ``target_port`` from now on, with no rule armed and fresh stats (a proxy
        made before its server, whose ``--public-url`` it is, then reused by each test)."""
        with self._lock:
            self.target = (self.target[0], target_port)
            self._rules.clear()
            self.stats = Stats()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(timeout=5)
        with self._lock:
            conns = list(self._conns)
            threads = list(self._threads)
        for sock in conns:
            _close(sock)
        for thread in threads:
            thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def alive_threads(self) -> int:
        with self._lock:
            return sum(t.is_alive() for t in self._threads) + self._acceptor.is_alive()

    # -- faults ----------------------------------------------------------------------------
    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _reserve(self, direction: Direction, request_line: str) -> Rule | None:
        with self._lock:
            for rule in self._rules:
                if rule.direction == direction and rule.armed and rule.match in request_line:
                    rule._reserved += 1
                    return rule
        return None

    def _settle(self, rule: Rule | None, fired: bool) -> None:
        if rule is None:
            return
        with self._lock:
            rule._reserved -= 1
            if fired:
                rule.fired += 1

    # -- plumbing --------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                full = len(self._threads) >= self.max_connections
            if full:
                _close(client)
                continue
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self.stats.connections += 1
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._conns.update((client, upstream))
        try:
            _Connection(self, client, upstream).run()
        except (OSError, ValueError):  # ValueError: a socket closed under select() by stop()
            pass
        finally:
            for sock in (client, upstream):
                _close(sock)
            with self._lock:
                self._conns.difference_update((client, upstream))


class _Connection:
    """One proxied connection: where each request and response starts, and its faults.

    Requests are framed by their head and ``Content-Length`` (or chunked encoding), so a server
    that answers before the whole body has arrived does not confuse the rest of the body with
    a new request. A response belongs to the latest request that was started.
    """

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.head = b""  # the start of a request, buffered until its head is complete
        self.body_left = 0  # bytes of the current request body still to come
        self.chunked_tail: bytes | None = None  # chunked body: the last bytes seen
        self.request_line = ""
        self.requests = 0  # requests started on this connection
        self.answered = 0  # the request the current response belongs to
        self.rules: dict[Direction, Rule | None] = {"up": None, "down": None}
        self.sent: dict[Direction, int] = {"up": 0, "down": 0}

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        for sock in (self.client, self.upstream):
            sock.settimeout(5)
        sel.register(self.client, selectors.EVENT_READ, "up")
        sel.register(self.upstream, selectors.EVENT_READ, "down")
        last_activity = time.monotonic()
        try:
            while not self.proxy._stopping.is_set():
                events = sel.select(timeout=0.2)
                if not events:
                    if time.monotonic() - last_activity > self.proxy.idle_timeout:
                        return
                    continue
                last_activity = time.monotonic()
                for key, _ in events:
                    direction: Direction = key.data
                    sock = self.client if direction == "up" else self.upstream
                    data = sock.recv(65536)
                    if not data:
                        return
                    alive = self._up(data) if direction == "up" else self._down(data)
                    if not alive:
                        return
        finally:
            sel.close()
            self._settle("up", False)
            self._settle("down", False)

    def _settle(self, direction: Direction, fired: bool) -> None:
        self.proxy._settle(self.rules[direction], fired)
        self.rules[direction] = None

    # -- client -> server ------------------------------------------------------------------
    def _in_body(self) -> bool:
        return self.body_left > 0 or self.chunked_tail is not None

    def _up(self, data: bytes) -> bool:
        while data:
            if self._in_body():
                part, data = self._take_body(data)
                if not self._forward("up", part):
                    return False
                continue
            self.head += data
            data = b""
            if b"\r\n\r\n" not in self.head and len(self.head) < _MAX_HEAD:
                return True
            head, sep, rest = self.head.partition(b"\r\n\r\n")
            self.head = b""
            if not self._start_request(head + sep, rest):
                return False
            data = rest  # after the head: the body, or (pipelined) the next request
        return True

    def _take_body(self, data: bytes) -> tuple[bytes, bytes]:
        """Split ``data`` into the rest of the current body and what follows it."""
        if self.chunked_tail is not None:
            seen = self.chunked_tail + data
            end = seen.find(b"0\r\n\r\n")
            if end < 0:
                self.chunked_tail = seen[-8:]
                return data, b""
            cut = end + 5 - len(self.chunked_tail)
            self.chunked_tail = None
            return data[:cut], data[cut:]
        part, rest = data[: self.body_left], data[self.body_left :]
        self.body_left -= len(part)
        return part, rest

    def _start_request(self, head: bytes, rest: bytes) -> bool:
        self._settle("up", False)
        self.sent["up"] = 0
        self.requests += 1
        self.request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        headers = _headers(head)
        if headers.get(b"transfer-encoding") == b"chunked":
            self.chunked_tail = b""
        else:
            self.body_left = int(headers.get(b"content-length", b"0") or 0)
        with self.proxy._lock:
            self.proxy.stats.requests += 1
            self.proxy.stats.request_lines.append(self.request_line)
        self.rules["up"] = self.proxy._reserve("up", self.request_line)
        rule = self.rules["up"]
        if rule is not None and rule.action == "respond":
            self._respond(rest)
            return False
        return self._forward("up", head)

    # -- server -> client ------------------------------------------------------------------
    def _down(self, data: bytes) -> bool:
        if self.answered != self.requests:  # the first bytes of the answer to the latest request
            self._settle("down", False)
            self.answered = self.requests
            self.sent["down"] = 0
            self.rules["down"] = self.proxy._reserve("down", self.request_line)
        return self._forward("down", data)

    # -- faults ----------------------------------------------------------------------------
    def _forward(self, direction: Direction, data: bytes) -> bool:
        dest = self.upstream if direction == "up" else self.client
        rule = self.rules[direction]
        if rule is not None and rule.action == "delay":
            time.sleep(rule.seconds)
            with self.proxy._lock:
                self.proxy.stats.delayed += 1
            self._settle(direction, True)
        elif rule is not None and rule.action in ("drop", "reset"):
            room = rule.after_bytes - self.sent[direction]
            if len(data) >= room:
                if room > 0:
                    dest.sendall(data[:room])
                with self.proxy._lock:
                    if rule.action == "drop":
                        self.proxy.stats.dropped += 1
                    else:
                        self.proxy.stats.reset += 1
                self._settle(direction, True)
                if rule.action == "reset":
                    _reset(self.client)
                    _reset(self.upstream)
                else:
                    for sock in (self.client, self.upstream):
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                return False
        dest.sendall(data)
        self.sent[direction] += len(data)
        return True

    def _respond(self, rest: bytes) -> None:
        """Swallow the request body, then answer the request with the rule's status."""
        rule = self.rules["up"]
        assert rule is not None
        deadline = time.monotonic() + 5
        _, rest = self._take_body(rest)
        while self._in_body() and time.monotonic() < deadline:
            more = self.client.recv(65536)
            if not more:
                break
            self._take_body(more)
        payload = json.dumps(
            {"error": {"code": "proxy_fault", "message": "injected by the test proxy; retry"}}
        ).encode()
        reason = _REASONS.get(rule.status, "Error")
        response = (
            f"HTTP/1.1 {rule.status} {reason}\r\n"
            f"Content-Type: application/json\r\n"
            f"Retry-After: {rule.retry_after}\r\n"
            f"Content-Length: {len(payload)}\r\n"
            f"Connection: close\r\n\r\n"
        ).encode() + payload
        with contextlib.suppress(OSError):
            self.client.sendall(response)
        with self.proxy._lock:
            self.proxy.stats.responded += 1
        self._settle("up", True)


def _headers(head: bytes) -> dict[bytes, bytes]:
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    return headers


def _reset(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
