"""The request log, as plain ASGI middleware.

Starlette's ``BaseHTTPMiddleware`` (``app.middleware("http")``) runs the route's ``receive`` in
a task of its own, so ``request.is_disconnected()`` never saw a client that went away: a held
OpenAI or OctoAI request went on waiting for its job. Plain ASGI passes ``receive`` through.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("whispercli.server")


class AccessLog:
    """Log each request (the path only: query strings carry URL signatures) with its status
    and time, and note in ``app.state.last_request`` when it came and ended (the idle exit
    reads it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        state.last_request = time.monotonic()
        started = time.perf_counter()
        status = 500  # unless a response starts

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            state.last_request = time.monotonic()
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed)
