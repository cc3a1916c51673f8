"""``whispercli worker run``: one queue worker of the PostgreSQL mode.

It takes as many Procrastinate tasks at once (:mod:`.queue`) as its engine child works on
(``--engine-jobs``), so the speech of jobs queued together is decoded together, as on the
embedded server. Each task waits in a thread of its own while one
:class:`~whispercli.server.jobs.runner.ExecutorLoop` claims its job in our table
(``Store.claim``: one more attempt, which fences out any older one) and runs it on the engine
child (:class:`~whispercli.server.engine.executor.JobExecutor`). The worker upserts its
heartbeat row (:mod:`.fleet`: the jobs it runs) every second. A lost database makes it
reconnect with a back-off; SIGINT or SIGTERM puts the running jobs back in the queue for
another worker and stops.
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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import procrastinate

from whispercli.server.engine.executor import JobExecutor
from whispercli.server.jobs import models
from whispercli.server.jobs.retention import sweep_once
from whispercli.server.jobs.runner import ExecutorLoop
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
from whispercli.server.storage.store import JobRecord, Store, StoreUnavailable

log = logging.getLogger("whispercli.server")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class _Wait:
    """A task waiting for its job: set ``done`` at the job's end."""

    done: threading.Event = field(default_factory=threading.Event)
    attempt: int | None = None
    """The attempt this worker claimed (None: not claimed)."""


class QueueWorker:
    """Runs the jobs the queue hands this worker, several at once on one engine child, and the
    fleet's retention sweep when the queue hands it that."""

    def __init__(
        self, settings: ServerSettings, store: Store, executor: JobExecutor, heartbeat: Heartbeat
    ) -> None:
        self.settings = settings
        self.store = store
        self.executor = executor
        self.heartbeat = heartbeat
        self.executor_loop = ExecutorLoop(
            executor, self._claim_next, self._changed, executor.stopping
        )
        self._lock = threading.Lock()
        self._handed: deque[str] = deque()
        """Job ids of the tasks waiting for room in the engine, oldest first."""
        self._waits: dict[str, _Wait] = {}
        self.capacity = heartbeat.capacity
        """Transcription tasks this worker takes at once (its engine's jobs); Procrastinate
        runs one task more, the slot kept for the fleet's chores (:func:`_fetch_rules`)."""
        self.taken = 0
        """Transcription tasks Procrastinate gave this worker that have not ended (counted at
        the fetch, before their threads start: :func:`_fetch_rules`)."""
        self.slot_freed = threading.Event()
        """Set when a transcription task ends (a full worker's fetch waits on it)."""

    @property
    def full(self) -> bool:
        """Every engine slot has its task: only a chore may be taken now."""
        return self.taken >= self.capacity

    def took(self) -> None:
        """Procrastinate gave this worker a transcription task (its thread starts soon)."""
        with self._lock:
            self.taken += 1

    def run(self, job_id: str) -> None:
        """A task (in a thread of its own): hand ``job_id`` to the executor loop and wait for the
        job's end; raise :class:`Requeued` if it went back to the queue (its engine crashed,
        or this worker stops)."""
        try:
            wait = self._wait_for(job_id)
        finally:
            with self._lock:
                self.taken -= 1
            self.slot_freed.set()
        after = self.store.get_job(job_id)
        if after is None:
            return
        if after.status == "pending" or (
            # dropped unfinished (the database went away mid-job): taken over once it is back
            after.status == "processing" and after.attempts == wait.attempt
        ):
            raise Requeued(job_id)

    def _wait_for(self, job_id: str) -> _Wait:
        with self._lock:
            wait = self._waits.get(job_id)
            if wait is None:
                wait = self._waits[job_id] = _Wait()
                self._handed.append(job_id)
        self.executor_loop.wake()
        while not wait.done.wait(0.2):
            if self.executor.stopping.is_set() and self._withdraw(job_id):
                break  # never claimed: still pending, so it is retried elsewhere
        return wait

    def sweep(self) -> None:
        removed = sweep_once(self.store, self.executor.blobs, self.settings.retention)
        removed += self.heartbeat.fleet.prune(self.settings.retention)
        if removed:
            log.info("retention sweep removed %d old jobs/uploads/worker rows", removed)

    # -- the executor loop's side (its thread) --------------------------------------------
    def _claim_next(self) -> JobRecord | None:
        """The oldest handed job this worker can still run, claimed; None when none waits."""
        while True:
            with self._lock:
                if not self._handed:
                    return None
                job_id = self._handed.popleft()
            try:
                job = self.store.claim(job_id, self.settings.max_attempts)
            except Exception:
                self._end(job_id)  # its task reads the job again, and fails to: retried
                raise
            if job is not None:
                with self._lock:
                    self._waits[job_id].attempt = job.attempts
                log.info("job %s: attempt %d on %s", job.id, job.attempts, socket.gethostname())
                return job
            self._end(job_id)  # finished, cancelled, deleted or out of attempts

    def _changed(self, job_id: str) -> None:
        """News from the executor loop: ``job_id`` started, or ended if the executor no
        longer holds it."""
        if not self.executor.holds(job_id):
            self._end(job_id)
        self.heartbeat.set_jobs(self.executor.job_ids)

    def _end(self, job_id: str) -> None:
        with self._lock:
            wait = self._waits.pop(job_id, None)
        if wait is not None:
            wait.done.set()

    def _withdraw(self, job_id: str) -> bool:
        """Take a handed job that was never claimed back from the executor loop."""
        with self._lock:
            if job_id not in self._handed:
                return False
            self._handed.remove(job_id)
            self._waits.pop(job_id, None)
            return True


HELPER_THREADS = 4
"""Executor threads beside the tasks': the fetch rules' calls (a peer's load, the wait for a
free slot) and Procrastinate's own."""
BUSY_FETCH_DELAY = 0.1
"""Seconds a worker waits per task it runs before it takes another from the queue."""
MAX_FETCH_DELAY = 0.5
"""The longest wait before a take (a worker running 5 tasks or more)."""


def _fetch_rules(app: procrastinate.App, worker: QueueWorker) -> None:
    """Wrap Procrastinate's ``JobManager.fetch_job`` (it has no option for either rule) so that:

    - **The fleet's chores never wait for a free engine slot.** Procrastinate runs one task
      more than the engine takes jobs; a worker whose every engine slot is busy takes only a
      chore (``retry_stalled``, the retention sweep) into that slot. Without it, a fleet whose
      workers all ran long jobs took over no dead worker's job until one of them ended.
    - **The least busy worker wins the race for a new task.** Every worker LISTENs, so on a new
      task all of them race to take it, and a worker with room for 8 took a burst of jobs as
      readily as an idle one (4 jobs on 2 idle workers went 3 and 1 in 3 runs of 3), leaving
      the other machine idle. Now a worker that has tasks already and sees a live peer of its
      queues running fewer (the fleet's rows) waits ``BUSY_FETCH_DELAY`` per task it has
      before each take, so the peer wins: jobs spread over the fleet first, and batch on a
      worker once every worker has as many. A worker alone takes at once (its jobs batch).
    """
    manager = app.job_manager
    fetch = manager.fetch_job
    fleet, heartbeat = worker.heartbeat.fleet, worker.heartbeat
    poll = worker.settings.queue_poll_seconds

    def yield_to_a_peer(taken: int) -> bool:
        with contextlib.suppress(StoreUnavailable):  # the fetch below reports it
            return fleet.less_busy_peer(heartbeat.worker_id, heartbeat.queues, taken)
        return False

    async def fetch_job(queues: Any, worker_id: int) -> Any:
        worker.slot_freed.clear()
        if worker.full:
            chore = await fetch(queues=[MAINTENANCE_QUEUE], worker_id=worker_id)
            if chore is not None:
                return chore
            # Procrastinate fetches again on a new task or its poll, not when a task ends.
            await asyncio.to_thread(worker.slot_freed.wait, poll)
            if worker.full or worker.executor.stopping.is_set():
                return None  # a stop ends the tasks: no new one then
        taken = worker.taken
        if taken and await asyncio.to_thread(yield_to_a_peer, taken):
            await asyncio.sleep(min(MAX_FETCH_DELAY, BUSY_FETCH_DELAY * taken))
        job = await fetch(queues=queues, worker_id=worker_id)
        if job is not None and job.task_name == TASK:
            worker.took()
        return job

    manager.fetch_job = fetch_job  # type: ignore[method-assign]


async def _serve(
    app: procrastinate.App, worker: QueueWorker, queues: list[str], stop: asyncio.Event
) -> None:
    """One Procrastinate worker until ``stop`` is set or it loses the database."""
    async with app.open_async():
        work = asyncio.create_task(
            app.run_worker_async(
                queues=[*queues, MAINTENANCE_QUEUE],
                concurrency=worker.capacity + 1,  # + the chores' slot: _fetch_rules
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
    # Procrastinate runs each sync task on the loop's default executor, whose threads are the
    # cores + 4: on 2 cores a worker took 8 tasks and ran 6, the fetch's helpers queued behind.
    threads = worker.capacity + 1 + HELPER_THREADS
    loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="task"))

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


class QueueNoise(logging.Filter):
    """Drops Procrastinate's INFO lines about the fleet's periodic tasks (deferred, started,
    ended: about 1.4 lines a second from an idle worker); their warnings and errors, and every
    line about a transcription job, stay. A task that ends with :class:`Requeued` (its job
    went back to the queue: the engine crashed, or the worker stops) keeps its line without
    the traceback: that is the retry working, not a fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], Requeued):
            record.exc_info, record.exc_text = None, None
        if record.levelno > logging.INFO or not record.name.startswith("procrastinate"):
            return True
        job = getattr(record, "job", None)
        return not (isinstance(job, dict) and job.get("queue") == MAINTENANCE_QUEUE)


def quiet_queue_logs() -> None:
    """Install ``QueueNoise`` on the handlers of the root logger (once)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, QueueNoise) for f in handler.filters):
            handler.addFilter(QueueNoise())


def run_worker(settings: ServerSettings, queues: list[str]) -> None:
    """``whispercli worker run``: serve ``queues`` until SIGINT/SIGTERM."""
    quiet_queue_logs()
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
        capacity=max(1, settings.engine_jobs),
    )
    worker = QueueWorker(settings, store, executor, heartbeat)
    log.info("worker on %s serving queues %s", socket.gethostname(), ", ".join(queues))
    try:
        executor.ensure_engine()
        heartbeat.start()
        worker.executor_loop.start()
        app = make_app(dsn, settings)
        _fetch_rules(app, worker)
        asyncio.run(_serve_until_stopped(app, worker, queues, stopping))
    finally:
        worker.executor_loop.stop()  # sets stopping: the jobs in flight go back to the queue
        heartbeat.stop()
        executor.close()
        storage.close()
