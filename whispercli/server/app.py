"""The composition root: ``create_app(settings)`` wires the server's parts into one ASGI app.

The embedded default is SQLite, disk blobs, in-process notification and a
:class:`~whispercli.server.jobs.runner.LocalRunner` (engine child in this machine); with
``--database`` it is PostgreSQL storage, a Procrastinate dispatcher and no engine here (queue
workers run the jobs: :mod:`whispercli.server.scale`). Every part can be passed in instead
(tests run the app in-process with their own store or runner). ``whispercli server run``
serves it (:mod:`whispercli.server.hosting`). The map of the whole package is
docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from whispercli.fsutil import is_private, read_or_create_secret
from whispercli.protocol import ACTIVE_STATUSES
from whispercli.server import api
from whispercli.server.api import errors
from whispercli.server.api.access_log import AccessLog
from whispercli.server.api.deps import Links
from whispercli.server.api.gate import RequestGate
from whispercli.server.api.signed_urls import Signer
from whispercli.server.api.webhook_bodies import body_builder
from whispercli.server.jobs import models, retention
from whispercli.server.jobs.runner import LocalRunner, NoRunner, Runner
from whispercli.server.jobs.service import JobService
from whispercli.server.settings import InsecureKeyFileError, ServerSettings
from whispercli.server.storage.blobs import BlobStore
from whispercli.server.storage.notify import Notifier
from whispercli.server.storage.open import Storage, local_storage, open_storage
from whispercli.server.storage.store import JobRecord, Store
from whispercli.server.webhooks.outbox import Deliverer
from whispercli.server.webhooks.signatures import WebhookSigner, load_secret
from whispercli.version import __version__

log = logging.getLogger("whispercli.server")

Dispatch = Callable[[JobRecord, str], Awaitable[None]]
DOCS_URL, REDOC_URL = "/docs", "/redoc"
DOCS_FILES = "/docs-files"
"""Where Swagger UI's and ReDoc's scripts are served from (fastapi-offline's copies)."""


@dataclass
class _Parts:
    """What the lifespan starts and stops, besides the storage."""

    storage: Storage
    runner: Runner
    service: JobService
    deliverer: Deliverer
    dispatcher: Any = None
    """The scale-out mode's QueueDispatcher (None: the local runner takes new jobs)."""


def create_app(
    settings: ServerSettings,
    *,
    store: Store | None = None,
    blobs: BlobStore | None = None,
    notifier: Notifier | None = None,
    runner: Runner | None = None,
) -> FastAPI:
    """Build the app; the API key and URL secret are read (or created) here. The parts not
    given are the ones ``settings`` choose (the embedded default's in ``settings.data_dir``)."""
    models.keep_hub_offline()
    api_key = settings.load_api_key()
    secret_file = settings.data_dir / "url-secret"
    signer = Signer(read_or_create_secret(secret_file))
    if not is_private(secret_file):
        raise InsecureKeyFileError(f"{secret_file} is readable by other users; chmod 600 it")
    if store is not None:
        storage = local_storage(settings, store, blobs, notifier)
    else:
        storage = _open_storage(settings)
    links = Links(signer, settings)
    parts = _assemble(settings, storage, runner, links)
    app = FastAPIOffline(  # /docs and /redoc with their scripts served here, not by a CDN
        title="whispercli local server",
        version=__version__,
        description="The Tiyaro async speech-to-text API, served locally by faster-whisper.",
        lifespan=_lifespan(settings, parts),
        docs_url=DOCS_URL,
        redoc_url=REDOC_URL,
        static_url=DOCS_FILES,
    )
    app.state.api_key = api_key
    app.state.service = parts.service
    app.state.runner = parts.runner
    app.state.links = links
    app.state.last_request = time.monotonic()
    errors.install(app)
    for router in api.ROUTERS:
        app.include_router(router)
    # The key and the body cap before any route reads a body; then the log (outermost).
    public = [app.openapi_url, DOCS_URL, app.swagger_ui_oauth2_redirect_url, REDOC_URL]
    app.add_middleware(
        RequestGate, settings=settings, public_paths=[*filter(None, public), DOCS_FILES + "/"]
    )
    app.add_middleware(AccessLog)
    return app


def _open_storage(settings: ServerSettings) -> Storage:
    if settings.database_url:
        from whispercli.server.scale.queue import migrate  # psycopg, procrastinate: only here

        migrate(settings.database_url)
    return open_storage(settings)


def _assemble(
    settings: ServerSettings, storage: Storage, runner: Runner | None, links: Links
) -> _Parts:
    """The runner, the job service (with its dispatch) and the webhook deliverer."""
    store, blobs, notifier = storage.store, storage.blobs, storage.notifier
    if runner is None:
        # With shared storage the jobs run on workers elsewhere, not in this process.
        runner = (
            NoRunner() if storage.shared else LocalRunner(settings, store, blobs, notifier.notify)
        )
    local_runner = runner

    async def wake_runner(_job: JobRecord, _queue: str) -> None:
        local_runner.wake()

    dispatch: Dispatch = wake_runner
    dispatcher, fleet = None, None
    if storage.shared:
        from whispercli.server.scale.fleet import Fleet
        from whispercli.server.scale.queue import TASK, QueueDispatcher
        from whispercli.server.storage.postgres.store import PostgresStore

        assert settings.database_url is not None and isinstance(store, PostgresStore)
        dispatcher = QueueDispatcher(settings.database_url, settings)
        dispatch = dispatcher
        fleet = Fleet(store.pool, settings.stalled_after_seconds, TASK)
    service = JobService(settings, store, blobs, notifier, dispatch, fleet=fleet)
    deliverer = Deliverer(
        store,
        WebhookSigner(load_secret(settings.webhook_secret_file)),
        settings.webhook_policy,
        body_builder(store, links),
        first_delay=settings.webhook_first_retry,
    )
    return _Parts(storage, runner, service, deliverer, dispatcher)


def _lifespan(
    settings: ServerSettings, parts: _Parts
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    storage, runner = parts.storage, parts.runner

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await storage.notifier.start()
        if parts.dispatcher is not None:
            await parts.dispatcher.start()
        runner.start()
        parts.deliverer.start()
        tasks = []
        if not storage.shared:  # with shared storage, one worker of the fleet sweeps
            sweep = retention.sweep_forever(storage.store, storage.blobs, settings.retention)
            tasks.append(asyncio.create_task(sweep))
        if settings.idle_timeout > 0:
            tasks.append(asyncio.create_task(_exit_when_idle(app, parts.service, runner)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            parts.service.close()
            await asyncio.to_thread(runner.stop)
            await asyncio.to_thread(parts.deliverer.stop)
            if parts.dispatcher is not None:
                await parts.dispatcher.close()
            await storage.notifier.close()
            storage.close()

    return lifespan


async def _exit_when_idle(app: FastAPI, service: JobService, runner: Runner) -> None:
    idle_timeout = service.settings.idle_timeout
    while True:
        await asyncio.sleep(min(5.0, idle_timeout / 4))
        counts = await asyncio.to_thread(service.store.counts)
        active = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
        idle_for = time.monotonic() - app.state.last_request
        if active == 0 and not runner.busy and idle_for > idle_timeout:
            log.info(
                "idle: no request for %.0f s (--idle-timeout %g) and no job queued or "
                "running; exiting (the CLI starts the server again when it needs it)",
                idle_for,
                idle_timeout,
            )
            os.kill(os.getpid(), signal.SIGTERM)
            return
