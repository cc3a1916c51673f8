"""``whispercli worker run``: one queue worker of the PostgreSQL mode.

It takes one Procrastinate task at a time (:mod:`.queue`), claims the job in our table
(``Store.claim``: one more attempt, which fences out any older one) and runs it on its engine
child (:class:`~whispercli.server.engine.executor.JobExecutor`), upserting its heartbeat row
(:mod:`.fleet`) every second. A lost database makes it reconnect with a back-off; SIGINT or
SIGTERM puts a running job back in the queue for another worker and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
import time

import procrastinate

from whispercli.server.engine.executor import JobExecutor
from whispercli.server.jobs import models
from whispercli.server.jobs.retention import sweep_once
from whispercli.server.scale.fleet import Fleet, Heartbeat
from whispercli.server.scale.queue import (
    MAINTENANCE_QUEUE,
    MAX_RECONNECT_DELAY,
    TASK,
    Requeued,
    make_app,
    migrate,
)
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.open import open_storage
from whispercli.server.storage.postgres.store import PostgresStore
from whispercli.server.storage.store import Store

log = logging.getLogger("whispercli.server")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class QueueWorker:
    """Runs the jobs the queue hands this worker, one at a time, on one engine child, and
    the fleet's retention sweep when the queue hands it that."""

    def __init__(
        self, settings: ServerSettings, store: Store, executor: JobExecutor, heartbeat: Heartbeat
    ) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.heartbeat = heartbeat

    def run(self, job_id: str) -> None:
        self.executor.ensure_engine()
        job = self.store.claim(job_id, self.settings.max_attempts)
        if job is None:
            return  # finished, cancelled, deleted or out of attempts
        log.info("job %s: attempt %d on %s", job.id, job.attempts, socket.gethostname())
        self.heartbeat.set_job(job.id)
        try:
            self.executor.run(job)
        finally:
            self.heartbeat.set_job(None)
        after = self.store.get_job(job_id)
        if after is not None and after.status == "pending":  # crashed, or this worker stops
            raise Requeued(job_id)

    def sweep(self) -> None:
        removed = sweep_once(self.store, self.executor.blobs, self.settings.retention)
        removed += self.heartbeat.fleet.prune(self.settings.retention)
        if removed:
            log.info("retention sweep removed %d old jobs/uploads/worker rows", removed)


async def _serve(
    app: procrastinate.App, worker: QueueWorker, queues: list[str], stop: asyncio.Event
) -> None:
    """One Procrastinate worker until ``stop`` is set or it loses the database."""
    async with app.open_async():
        work = asyncio.create_task(
            app.run_worker_async(
                queues=[*queues, MAINTENANCE_QUEUE],
                concurrency=1,
                name=worker.heartbeat.worker_id,
                additional_context={"whispercli": worker},
                update_heartbeat_interval=worker.settings.heartbeat_seconds,
                stalled_worker_timeout=worker.settings.stalled_after_seconds,
                fetch_job_polling_interval=worker.settings.queue_poll_seconds,
                shutdown_graceful_timeout=5,
                install_signal_handlers=False,
            )
        )
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not work.done():
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work  # a crash of the worker itself propagates


async def _serve_until_stopped(
    app: procrastinate.App, worker: QueueWorker, queues: list[str], stopping: threading.Event
) -> None:
    """Serve until SIGINT/SIGTERM, reconnecting with a back-off when the database goes."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        stopping.set()  # a running job is put back in the queue for another worker
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    delay = 0.5
    while not stop.is_set():
        started = time.monotonic()
        try:
            await _serve(app, worker, queues, stop)
        except Exception as exc:
            log.warning("the worker lost the database (%s)", _first_line(exc))
        if time.monotonic() - started > 30:
            delay = 0.5  # it had been up a while: reconnect quickly again
        if stop.is_set():
            return
        log.info("reconnecting to the database in %.1f s", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(MAX_RECONNECT_DELAY, delay * 2)


class MaintenanceNoise(logging.Filter):
    """Drops Procrastinate's INFO lines about the fleet's periodic tasks (deferred, started,
    ended: about 1.4 lines a second from an idle worker); their warnings and errors, and every
    line about a transcription job, stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("procrastinate"):
            return True
        job = getattr(record, "job", None)
        return not (isinstance(job, dict) and job.get("queue") == MAINTENANCE_QUEUE)


def quiet_maintenance_logs() -> None:
    """Install ``MaintenanceNoise`` on the handlers of the root logger (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, MaintenanceNoise) for f in handler.filters):
            handler.addFilter(MaintenanceNoise())


def run_worker(settings: ServerSettings, queues: list[str]) -> None:
    """``whispercli worker run``: serve ``queues`` until SIGINT/SIGTERM."""
    quiet_maintenance_logs()
    models.keep_hub_offline()
    dsn = settings.database_url or ""
    migrate(dsn)  # like the API server
    storage = open_storage(settings)
    store = storage.store
    assert isinstance(store, PostgresStore)
    stopping = threading.Event()
    executor = JobExecutor(settings, store, storage.blobs, stopping)
    heartbeat = Heartbeat(
        Fleet(store.pool, settings.stalled_after_seconds, TASK),
        f"{socket.gethostname()}-{os.getpid()}",
        queues,
        settings.device_plan.device,
        models.installed(settings.models_dir),
        settings.heartbeat_seconds,
    )
    worker = QueueWorker(settings, store, executor, heartbeat)
    log.info("worker on %s serving queues %s", socket.gethostname(), ", ".join(queues))
    try:
        executor.ensure_engine()
        heartbeat.start()
        asyncio.run(_serve_until_stopped(make_app(dsn, settings), worker, queues, stopping))
    finally:
        stopping.set()
        heartbeat.stop()
        executor.close()
        storage.close()
