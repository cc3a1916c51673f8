"""Hosting the app in this process: ``whispercli server run`` parses its flags
(:mod:`whispercli.cli.server`) and calls :func:`serve`.

The listening socket is bound up front (a taken port is a clean error, not a traceback), the
pid file records this process for ``server stop|status`` and the auto-start, and uvicorn serves
until SIGINT/SIGTERM, then exits 0. uvicorn is imported inside :func:`serve` only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from whispercli.errors import UnreachableError, UsageError, WhisperCliError
from whispercli.fsutil import atomic_write_text
from whispercli.paths import server_pid_file
from whispercli.server.engine.device import DevicePlan
from whispercli.server.settings import InsecureKeyFileError, ServerSettings, display_url

log = logging.getLogger("whispercli.server")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound now: a taken port is a clean error, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this; without it a keep-alive client waits ~40 ms per response
    # (Nagle + delayed ACK): uvicorn sets it only on sockets it binds itself.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise WhisperCliError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="is another server running? try `whispercli server status` or pick --port",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def choose_device(device: str, compute_type: str) -> DevicePlan:
    """The engine's device, chosen now (a ``cuda`` that cannot work fails the start)."""
    from whispercli.modelhub import shipped_model
    from whispercli.server.engine import device as devices

    try:
        probe_model = shipped_model()
        plan = devices.choose(device, compute_type, str(probe_model) if probe_model else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except devices.DeviceError as exc:
        raise WhisperCliError(str(exc)) from None
    if plan.device == "cuda":  # the engine child starts after this: the loader reads it then
        os.environ.update(devices.loader_path_env(os.environ, devices.nvidia_lib_dirs()))
    log.info("device: %s %s (%s)", plan.device, plan.compute_type, plan.reason)
    return plan


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, which kills the
        process before our cleanup runs; a clean exit (code 0) is what a service manager and
        ``server stop`` expect, so drop the captured signals once shutdown is complete."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                captured = getattr(self, "_captured_signals", None)
                if isinstance(captured, list):
                    captured.clear()

    return Server


def _protocol_class(header_timeout: float) -> type:
    """uvicorn's h11 protocol, stricter where uvicorn is lenient: a connection whose request
    headers are not all in within ``header_timeout`` seconds is closed (uvicorn times out an
    idle keep-alive connection, never a half-sent request), and a request with both
    ``Content-Length`` and ``Transfer-Encoding`` (framing two parsers may read differently: a
    request-smuggling vector) is a 400 that closes the connection (h11 would take chunked)."""
    import h11
    from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol

    class StrictConnection(h11.Connection):
        def next_event(self) -> Any:
            event = super().next_event()
            if isinstance(event, h11.Request):
                names = {name.lower() for name, _ in event.headers}
                if {b"content-length", b"transfer-encoding"} <= names:
                    raise h11.RemoteProtocolError(
                        "Content-Length and Transfer-Encoding together", error_status_hint=400
                    )
            return event

    class Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            size = self.config.h11_max_incomplete_event_size
            self.conn = StrictConnection(
                h11.SERVER, max_incomplete_event_size=size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
            )
            self._header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the headers are in

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm()  # the next request's headers get the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closed a connection whose request headers took over %g s", header_timeout)
                self.transport.close()

    return Protocol


def _build_app(settings: ServerSettings) -> Any:
    from whispercli.server.app import create_app
    from whispercli.server.storage.store import StoreUnavailable
    from whispercli.server.webhooks.signatures import WebhookSecretError

    try:
        return create_app(settings)
    except (InsecureKeyFileError, WebhookSecretError) as exc:
        raise WhisperCliError(str(exc)) from None
    except StoreUnavailable as exc:
        raise UnreachableError(
            f"{exc} ({settings.database_shown})", hint="is PostgreSQL running? check --database"
        ) from None


def _write_pid_file(port: int, url: str) -> Path:
    path = server_pid_file(port)
    atomic_write_text(path, json.dumps({"pid": os.getpid(), "url": url, "port": port}))
    return path


def _remove_own_pid_file(path: Path) -> None:
    try:
        recorded = json.loads(path.read_text("utf-8")).get("pid")
    except (OSError, ValueError, AttributeError):
        return
    if recorded == os.getpid():  # another server may have taken the port since
        path.unlink(missing_ok=True)


def serve(settings: ServerSettings, log_level: str) -> None:
    """Serve ``settings`` in the foreground until SIGINT or SIGTERM."""
    import uvicorn

    if not settings.is_loopback:
        log.warning(
            "binding %s: anyone who can reach this address and port can try the API key, "
            "and traffic (key, audio, transcripts) is plain HTTP; prefer 127.0.0.1",
            settings.host,
        )
        if settings.public_url is None:
            log.warning(
                "no --public-url: the upload and poll URLs this server hands out start with "
                "%s; pass --public-url with the address clients reach it by",
                settings.base_url,
            )
    application = _build_app(settings)
    sock = bind(settings.host, settings.port)
    url = display_url(settings.host, settings.port)
    pid_path = _write_pid_file(settings.port, url)
    bound = sock.getsockname()
    log.info(
        "whispercli server listening on %s port %d, reachable as %s (data in %s)",
        bound[0],
        bound[1],
        url,
        settings.data_dir,
    )
    config = uvicorn.Config(  # log_config=None: uvicorn's lines take our one format
        application,
        log_config=None,
        log_level=log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
        http=_protocol_class(settings.header_timeout),
    )
    try:
        _server_class()(config).run(sockets=[sock])
    finally:
        sock.close()
        _remove_own_pid_file(pid_path)
        log.info("whispercli server on %s stopped", url)
