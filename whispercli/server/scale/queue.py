"""Dispatch in the PostgreSQL mode: Procrastinate carries ``transcribe(job_id)`` tasks.

Our jobs table stays the truth a poll shows; the queue only says which worker runs what.
- The API server enqueues a task per new job on the tier's queue (:class:`QueueDispatcher`).
- A worker (:mod:`.worker`, ``whispercli worker run``) takes up to ``--engine-jobs`` tasks at
  once, calls ``Store.claim(job_id)`` (one more attempt, which fences out any older one) and
  runs the jobs together on its engine child
  (:class:`~whispercli.server.engine.executor.JobExecutor`). A job the engine crashed on is
  queued again by the store and the task raises :class:`Requeued`, so Procrastinate retries it
  (the store fails it after ``max_attempts``).
- Every worker runs the documented periodic task that retries the tasks of workers whose
  heartbeat stopped; ``claim`` then takes the job over.
- Cancel needs no abort: the executor reads the job's cancel flag every 0.2 s, and a queued
  job that was cancelled is not claimed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import procrastinate
from procrastinate import JobContext, PsycopgConnector, RetryStrategy

from whispercli.server.settings import ServerSettings
from whispercli.server.storage.postgres import schema
from whispercli.server.storage.postgres.pool import steady_reconnects
from whispercli.server.storage.store import JobRecord, StoreUnavailable

if TYPE_CHECKING:
    from whispercli.server.scale.worker import QueueWorker

log = logging.getLogger("whispercli.server")

TASK = "whispercli.transcribe"
MAINTENANCE_QUEUE = "whispercli-maintenance"
MAX_RECONNECT_DELAY = 10.0
CHORE_PRIORITY = 10
"""The fleet's periodic tasks go before transcription tasks (priority 0): Procrastinate takes
the highest priority first, then the oldest, and a periodic task is deferred anew every tick,
so behind a backlog of jobs it waited until the backlog drained (no dead worker's job was
taken over meanwhile)."""


class Requeued(Exception):
    """The job went back to the queue (its engine crashed): let Procrastinate retry it."""


def migrate(dsn: str) -> None:
    """Install or update our schema and Procrastinate's, under one lock (``server migrate``;
    also every API server and worker at start)."""
    from procrastinate.schema import SchemaManager

    schema.migrate(dsn, ("procrastinate_jobs", SchemaManager.get_schema()))


def make_app(dsn: str, settings: ServerSettings) -> procrastinate.App:
    """The Procrastinate app: the transcription task and the fleet's two periodic tasks
    (timings from ``settings``: ``stalled_after_seconds``, ``retention_sweep_seconds``)."""
    steady_reconnects()
    app = procrastinate.App(connector=PsycopgConnector(conninfo=dsn))
    stalled_after = settings.stalled_after_seconds
    sweep_every = min(59, max(1, round(settings.retention_sweep_seconds)))

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
    @app.task(
        queue=MAINTENANCE_QUEUE,
        queueing_lock="retry-stalled",
        pass_context=True,
        priority=CHORE_PRIORITY,
    )
    async def retry_stalled(context: JobContext, timestamp: int) -> None:
        manager = context.app.job_manager
        for stalled in await manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after):
            log.warning("task %s of a dead worker: retrying it", stalled.id)
            await manager.retry_job(stalled)

    # One tick per period for the whole fleet: Procrastinate defers each tick once.
    @app.periodic(cron=f"* * * * * */{sweep_every}")  # seconds come last
    @app.task(
        queue=MAINTENANCE_QUEUE,
        queueing_lock="retention",
        pass_context=True,
        priority=CHORE_PRIORITY,
    )
    def retention_sweep(context: JobContext, timestamp: int) -> None:
        worker: QueueWorker = context.additional_context["whispercli"]
        worker.sweep()

    return app


class QueueDispatcher:
    """The API server's side: enqueue each new job on its queue."""

    def __init__(self, dsn: str, settings: ServerSettings) -> None:
        self.app = make_app(dsn, settings)
        self._open: Any = None

    async def start(self) -> None:
        self._open = self.app.open_async()
        await self._open.__aenter__()

    async def close(self) -> None:
        if self._open is not None:
            await self._open.__aexit__(None, None, None)
            self._open = None

    async def __call__(self, job: JobRecord, queue: str) -> None:
        await self.app.configure_task(TASK, queue=queue).defer_async(job_id=job.id)
