"""Loopback networking for tests: a free port, the one stub HTTP server, a webhook receiver.

Every fake that speaks HTTP (a vendor API, the Hugging Face hub, a file host, a webhook
receiver, a scripted stub) is a :class:`http.server.BaseHTTPRequestHandler` served by
:func:`serve_http`; nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _StubServer(http.server.ThreadingHTTPServer):
    quiet = False

    def handle_error(self, request: object, client_address: object) -> None:
        """A handler's traceback goes to the test process's own stderr, never into the
        ``sys.stderr`` an in-process CLI run has swapped in (it would read as the CLI's);
        a connection the client dropped is not an error of the stub's."""
        error = sys.exc_info()[1]
        if self.quiet or isinstance(error, ConnectionError):
            return
        traceback.print_exc(file=sys.__stderr__)


@contextlib.contextmanager
def serve_http(
    handler: type[http.server.BaseHTTPRequestHandler], port: int = 0, *, quiet: bool = False
) -> Iterator[str]:
    """Serve ``handler`` on loopback ``port`` (0: a free one) in a thread; yields the base URL
    (``http://127.0.0.1:PORT``) and stops the server on exit. ``quiet``: no traceback for a
    connection the handler or the client broke (fault-injection tests break them on purpose)."""
    httpd = _StubServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    httpd.quiet = quiet
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def port_of(url: str) -> int:
    """The port of ``http://127.0.0.1:PORT[/...]``."""
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    """When it came in (``time.monotonic``)."""


@dataclass
class Receiver:
    """What a webhook receiver got; ``statuses`` are answered in order, then 200."""

    port: int = 0
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    headers_out: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def wait(self, count: int, timeout: float) -> bool:
        """True once ``count`` requests have come in (within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


@contextlib.contextmanager
def receiver(statuses: list[int] | None = None, port: int = 0) -> Iterator[Receiver]:
    """A webhook receiver on loopback (``port`` 0: a free one) until the block ends: records
    every POST and answers the scripted statuses."""
    state = Receiver(statuses=list(statuses or []))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            state.received.append(Received(self.path, dict(self.headers.items()), body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            for name, value in state.headers_out.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler, port) as base:
        state.port = port_of(base)
        yield state


@contextlib.contextmanager
def raw_server(serve: Callable[[socket.socket, threading.Event], None]) -> Iterator[str]:
    """A loopback listener handing each connection to ``serve(conn, stop)`` in a thread of its
    own; yields the base URL (``http://127.0.0.1:PORT``). On exit ``stop`` is set, then the
    listener and every connection are closed."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = listener.accept()
                held.append(conn)
                threading.Thread(target=serve, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def trickler(
    interval: float, accepted: threading.Event | None = None
) -> contextlib.AbstractContextManager[str]:
    """An HTTP server on loopback that answers every request one byte every ``interval`` s
    (no socket timeout fires); ``accepted`` is set when a connection arrives."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"\0" * 100000

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        if accepted is not None:
            accepted.set()
        for byte in answer:
            if stop.wait(interval):
                return
            with contextlib.suppress(OSError):
                conn.sendall(bytes([byte]))

    return raw_server(serve)


def silent_http() -> contextlib.AbstractContextManager[str]:
    """A loopback port that accepts connections, reads nothing and never answers."""
    return raw_server(lambda conn, stop: None)


def read_status(sock: socket.socket, timeout: float) -> int | None:
    """The status code of the HTTP/1.1 answer arriving on ``sock`` (None: none came)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n" not in data:
            piece = sock.recv(4096)
            if not piece:
                break
            data += piece
    return int(data.split()[1]) if data.startswith(b"HTTP/1.1 ") else None
