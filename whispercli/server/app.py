"""The HTTP app: the routers of :mod:`whispercli.server.api` over one job service.

``create_app(settings)`` wires the backend the settings choose (:mod:`.backends`: the embedded
default -- SQLite, disk, in-process notification, a :class:`LocalRunner` -- or PostgreSQL,
with no engine in this process), and every part can be passed in instead (tests run the app
in-process with their own store or runner). ``whispercli server run`` serves it with uvicorn.

The map::

    api/{uploads,jobs,health}  routers: HTTP shapes <-> service calls     (api/__init__.py)
    service.JobService         every rule about uploads and jobs          (errors.ERRORS)
    store.Store                jobs, uploads metadata, results, retention (sqlite_store,
                                                                          postgres_store)
    blobs.BlobStore            upload bytes                  (DiskBlobStore, postgres_blobs)
    notify.Notifier            wakes long-polls             (LocalNotifier, postgres_notify)
    runner.Runner              runs jobs: JobExecutor -> worker.EngineProcess (child)
    retention                  the periodic sweep, its own task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, Response

from whispercli import __version__
from whispercli.fsutil import is_private, read_or_create_secret
from whispercli.protocol import ACTIVE_STATUSES
from whispercli.server import api, retention
from whispercli.server.api import errors
from whispercli.server.api.deps import Links
from whispercli.server.backends import Backend, open_backend
from whispercli.server.blobs import BlobStore, DiskBlobStore
from whispercli.server.deliveries import body_builder
from whispercli.server.notify import LocalNotifier, Notifier
from whispercli.server.runner import LocalRunner, NoRunner, Runner
from whispercli.server.service import JobService
from whispercli.server.settings import InsecureKeyFileError, ServerSettings
from whispercli.server.signing import Signer
from whispercli.server.store import Job, Store
from whispercli.server.webhooks.outbox import Deliverer
from whispercli.server.webhooks.signing import WebhookSigner, load_secret

log = logging.getLogger("whispercli.server")


def create_app(
    settings: ServerSettings,
    *,
    store: Store | None = None,
    blobs: BlobStore | None = None,
    notifier: Notifier | None = None,
    runner: Runner | None = None,
) -> FastAPI:
    """Build the app; the API key and URL secret are read (or created) here. The parts not
    given are the embedded default's, in ``settings.data_dir``."""
    api_key = settings.load_api_key()
    secret_file = settings.data_dir / "url-secret"
    signer = Signer(read_or_create_secret(secret_file))
    if not is_private(secret_file):
        raise InsecureKeyFileError(f"{secret_file} is readable by other users; chmod 600 it")
    if store is None:
        backend = open_backend(settings)
    else:
        backend = Backend(
            store,
            blobs if blobs is not None else DiskBlobStore(settings.data_dir / "uploads"),
            notifier if notifier is not None else LocalNotifier(),
        )
    store, blobs, notifier = backend.store, backend.blobs, backend.notifier
    if runner is None:
        # With shared storage the jobs run on workers elsewhere, not in this process.
        runner = (
            NoRunner() if backend.shared else LocalRunner(settings, store, blobs, notifier.notify)
        )

    async def wake_runner(_job: Job, _queue: str) -> None:
        runner.wake()

    dispatcher = backend.dispatcher
    service = JobService(
        settings, store, blobs, notifier, dispatcher or wake_runner, fleet=backend.fleet
    )
    links = Links(signer, settings)
    deliverer = Deliverer(
        store,
        WebhookSigner(load_secret(settings.webhook_secret_file)),
        settings.webhook_policy,
        body_builder(store, links),
        first_delay=settings.webhook_first_retry,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await notifier.start()
        if dispatcher is not None:
            await dispatcher.start()
        runner.start()
        deliverer.start()
        tasks = []
        if not backend.shared:  # with shared storage, one worker of the fleet sweeps (queue.py)
            tasks.append(
                asyncio.create_task(retention.sweep_forever(store, blobs, settings.retention))
            )
        if settings.idle_timeout > 0:
            tasks.append(asyncio.create_task(_exit_when_idle(app, service, runner)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.to_thread(runner.stop)
            await asyncio.to_thread(deliverer.stop)
            if dispatcher is not None:
                await dispatcher.close()
            await notifier.close()
            backend.close()

    app = FastAPI(
        title="whispercli local server",
        version=__version__,
        description="The Tiyaro async speech-to-text API, served locally by faster-whisper.",
        lifespan=lifespan,
    )
    app.state.api_key = api_key
    app.state.service = service
    app.state.runner = runner
    app.state.links = links
    app.state.last_request = time.monotonic()
    errors.install(app)
    for router in api.ROUTERS:
        app.include_router(router)

    @app.middleware("http")
    async def _log_and_touch(request: Request, call_next: Any) -> Response:
        # Logs the path only: query strings carry URL signatures.
        app.state.last_request = time.monotonic()
        started = time.perf_counter()
        response: Response = await call_next(request)
        app.state.last_request = time.monotonic()
        log.info(
            "%s %s %d %.1f ms",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    return app


async def _exit_when_idle(app: FastAPI, service: JobService, runner: Runner) -> None:
    idle_timeout = service.settings.idle_timeout
    while True:
        await asyncio.sleep(min(5.0, idle_timeout / 4))
        counts = await asyncio.to_thread(service.store.counts)
        active = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
        idle_for = time.monotonic() - app.state.last_request
        if active == 0 and not runner.busy and idle_for > idle_timeout:
            log.info("no request for %.0f s and no work: exiting", idle_for)
            os.kill(os.getpid(), signal.SIGTERM)
            return
