"""Dispatch in the PostgreSQL mode: Procrastinate carries ``transcribe(job_id)`` tasks.

Our jobs table stays the truth a poll shows; the queue only says which worker runs what.
- The API server enqueues a task per new job on the tier's queue (:class:`QueueDispatcher`).
- A worker (:func:`run_worker`, ``whispercli worker run``) takes one task at a time, calls
  ``Store.claim(job_id)`` (one more attempt, which fences out any older one) and runs the job on
  its engine child with :class:`~whispercli.server.runner.JobExecutor`. A job the engine
  crashed on is queued again by the store and the task raises :class:`Requeued`, so
  Procrastinate retries it (the store fails it after ``max_attempts``).
- Every worker runs the documented periodic task that retries the tasks of workers whose
  heartbeat stopped; ``claim`` then takes the job over.
- Cancel needs no abort: the executor reads the job's cancel flag every 0.2 s, and a queued
  job that was cancelled is not claimed.
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
from typing import Any

import procrastinate
from procrastinate import JobContext, PsycopgConnector, RetryStrategy

from whispercli.server.fleet import Fleet, Heartbeat
from whispercli.server.retention import sweep_once
from whispercli.server.settings import ServerSettings
from whispercli.server.store import Job, Store, StoreUnavailable

log = logging.getLogger("whispercli.server")

TASK = "whispercli.transcribe"
MAINTENANCE_QUEUE = "whispercli-maintenance"
HEARTBEAT_SECONDS = 1.0
STALLED_AFTER_SECONDS = 5.0
"""A worker whose heartbeat is this old is dead: its job goes to another worker."""
MAX_RECONNECT_DELAY = 10.0
RETENTION_EVERY_SECONDS = 10
"""One worker of the fleet deletes expired jobs, results and uploads this often (a periodic
task: Procrastinate defers each tick once, whoever else runs it)."""
POLL_SECONDS = 1.0
"""Workers also look for tasks this often (retries of stalled tasks send no NOTIFY)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Requeued(Exception):
    """The job went back to the queue (its engine crashed): let Procrastinate retry it."""


def procrastinate_schema() -> str:
    from procrastinate.schema import SchemaManager

    return SchemaManager.get_schema()


def make_app(dsn: str) -> procrastinate.App:
    app = procrastinate.App(connector=PsycopgConnector(conninfo=dsn))

    @app.task(
        name=TASK,
        pass_context=True,
        # Requeued: the engine crashed (the store counts attempts and fails it after
        # max_attempts); StoreUnavailable: the database went away mid-job.
        retry=RetryStrategy(max_attempts=10, retry_exceptions={Requeued, StoreUnavailable}),
    )
    def transcribe(context: JobContext, job_id: str) -> None:
        worker: QueueWorker = context.additional_context["whispercli"]
        worker.run(job_id)

    @app.periodic(cron="*/1 * * * * *")
    @app.task(queue=MAINTENANCE_QUEUE, queueing_lock="retry-stalled", pass_context=True)
    async def retry_stalled(context: JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        for stalled in await manager.get_stalled_jobs(
            seconds_since_heartbeat=STALLED_AFTER_SECONDS
        ):
            log.warning("task %s of a dead worker: retrying it", stalled.id)
            await manager.retry_job(stalled)

    @app.periodic(cron=f"* * * * * */{RETENTION_EVERY_SECONDS}")  # seconds come last
    @app.task(queue=MAINTENANCE_QUEUE, queueing_lock="retention", pass_context=True)
    def retention_sweep(context: JobContext, timestamp: int) -> None:
        worker: QueueWorker = context.additional_context["whispercli"]
        worker.sweep()

    return app


class QueueDispatcher:
    """The API server's side: enqueue each new job on its queue."""

    def __init__(self, dsn: str) -> None:
        self.app = make_app(dsn)
        self._open: Any = None

    async def start(self) -> None:
        self._open = self.app.open_async()
        await self._open.__aenter__()

    async def close(self) -> None:
        if self._open is not None:
            await self._open.__aexit__(None, None, None)
            self._open = None

    async def __call__(self, job: Job, queue: str) -> None:
        await self.app.configure_task(TASK, queue=queue).defer_async(job_id=job.id)


class QueueWorker:
    """Runs the jobs the queue hands this worker, one at a time, on one engine child, and
    the fleet's retention sweep when the queue hands it that."""

    def __init__(
        self, settings: ServerSettings, store: Store, executor: Any, heartbeat: Heartbeat
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


def run_worker(settings: ServerSettings, queues: list[str]) -> None:
    """``whispercli worker run``: serve ``queues`` until SIGINT/SIGTERM."""
    from whispercli.server import models
    from whispercli.server.backends import open_backend
    from whispercli.server.postgres_store import PostgresStore
    from whispercli.server.runner import JobExecutor

    backend = open_backend(settings)  # migrates, like the API server
    assert isinstance(backend.store, PostgresStore)
    stopping = threading.Event()
    executor = JobExecutor(settings, backend.store, backend.blobs, lambda _id: None, stopping)
    heartbeat = Heartbeat(
        Fleet(backend.store.pool, STALLED_AFTER_SECONDS, TASK),
        f"{socket.gethostname()}-{os.getpid()}",
        queues,
        settings.device_plan.device,
        models.installed(settings.models_dir),
        HEARTBEAT_SECONDS,
    )
    worker = QueueWorker(settings, backend.store, executor, heartbeat)
    app = make_app(settings.database_url or "")
    names = [*queues, MAINTENANCE_QUEUE]
    log.info("worker on %s serving queues %s", socket.gethostname(), ", ".join(queues))

    async def serve(stop: asyncio.Event) -> None:
        """One Procrastinate worker until ``stop`` (True) or until it loses the database."""
        async with app.open_async():
            work = asyncio.create_task(
                app.run_worker_async(
                    queues=names,
                    concurrency=1,
                    name=heartbeat.worker_id,
                    additional_context={"whispercli": worker},
                    update_heartbeat_interval=HEARTBEAT_SECONDS,
                    stalled_worker_timeout=STALLED_AFTER_SECONDS,
                    fetch_job_polling_interval=POLL_SECONDS,
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

    async def main() -> None:
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
                await serve(stop)
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

    try:
        executor.ensure_engine()
        heartbeat.start()
        asyncio.run(main())
    finally:
        stopping.set()
        heartbeat.stop()
        executor.close()
        backend.close()
