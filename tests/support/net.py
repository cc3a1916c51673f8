"""Loopback networking for tests: a free port, the one stub HTTP server, a webhook receiver.

Every fake that speaks HTTP (a vendor API, the Hugging Face hub, a file host, a webhook
receiver, a scripted stub) is a :class:`http.server.BaseHTTPRequestHandler` served by
:func:`serve_http`; nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_http(
    handler: type[http.server.BaseHTTPRequestHandler], port: int = 0, *, quiet: bool = False
) -> Iterator[str]:
    """Serve ``handler`` on loopback ``port`` (0: a free one) in a thread; yields the base URL
    (``http://127.0.0.1:PORT``) and stops the server on exit. ``quiet``: no traceback for a
    connection the handler or the client broke (fault-injection tests break them on purpose)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    if quiet:
        httpd.handle_error = lambda *_: None  # type: ignore[method-assign]
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
