"""How jobs get run for the app: :class:`Runner` is what the app starts and stops.

- :class:`ExecutorLoop` is one thread that keeps a
  :class:`~whispercli.server.engine.executor.JobExecutor` full: it takes jobs from a source, up
  to the executor's capacity (the engine decodes them together), and relays the engine's news.
- :class:`LocalRunner` (the embedded default): an executor loop whose source is the store's
  queue (the oldest queued job first).
- :class:`NoRunner`: an API server whose jobs run on queue workers elsewhere (PostgreSQL mode,
  :mod:`whispercli.server.scale.worker`: an executor loop whose source is the tasks
  Procrastinate hands it, several at once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from whispercli.server.engine.executor import JobExecutor
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.blobs import BlobStore
from whispercli.server.storage.store import JobRecord, Store, StoreUnavailable

log = logging.getLogger("whispercli.server")

PUMP_SECONDS = 0.05
"""How long the runner relays engine news before it looks for new jobs again."""


class Runner(Protocol):
    """What runs jobs for the app: started and stopped by its lifespan."""

    @property
    def busy(self) -> bool:
        """A job is running (the idle exit waits for it)."""
        ...

    @property
    def loaded_paths(self) -> list[str]:
        """Model folders loaded in the engine now, least recently used first."""
        ...

    @property
    def device(self) -> str | None:
        """Where this runner's jobs decode (cpu, cuda); None: not in this process."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None:
        """A job was queued: look for it now rather than at the next tick."""
        ...


class NoRunner:
    """The runner of an API server whose jobs run on workers elsewhere (shared storage)."""

    busy = False
    device = None

    @property
    def loaded_paths(self) -> list[str]:
        return []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wake(self) -> None:
        pass


class ExecutorLoop:
    """One thread that keeps ``executor`` full with the jobs ``next_job`` gives (claimed:
    processing, this attempt) and tells ``notify`` the id of every job that started or
    changed, ended included; ``wake`` makes it ask ``next_job`` now rather than at its next
    tick."""

    def __init__(
        self,
        executor: JobExecutor,
        next_job: Callable[[], JobRecord | None],
        notify: Callable[[str], None],
        stopping: threading.Event,
    ) -> None:
        self.executor = executor
        self.next_job = next_job
        self.notify = notify
        self.stopping = stopping
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop (``stopping`` is set) and wait for the thread; jobs in flight go back to the
        queue (``JobExecutor``: a stopping server releases them)."""
        self.stopping.set()
        self._wake.set()
        self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._tick()
            except StoreUnavailable as exc:  # the database went away: no traceback for that
                log.warning("%s; the runner retries in a second", exc)
                self.stopping.wait(1.0)
            except Exception:
                log.exception("runner error; retrying in a second")
                self.stopping.wait(1.0)
        held = self.executor.job_ids  # stopped between two ticks: they go back to the queue
        try:
            self.executor.release_all()
        except StoreUnavailable:
            log.warning("could not put %d jobs back in the queue: the store is gone", len(held))
        for job_id in held:
            self.notify(job_id)

    def _tick(self) -> None:
        """Fill the engine up to its capacity, then relay its news for a moment."""
        executor = self.executor
        executor.ensure_engine()
        self._wake.clear()
        # An engine lost while a job was handed over re-queued its jobs: claiming more before
        # the next tick restarts it would spend their attempts on a dead process.
        while (
            executor.in_flight < executor.capacity
            and executor.accepting
            and not self.stopping.is_set()
        ):
            job = self.next_job()
            if job is None:
                break
            try:
                changed = executor.submit(job)
            except Exception:  # the store went away: whoever waits for the job hears of it
                self.notify(job.id)
                raise
            for job_id in dict.fromkeys([job.id, *changed]):
                self.notify(job_id)
        if executor.in_flight == 0:
            executor.drain_idle()
            self._wake.wait(0.5)
            return
        held = executor.job_ids
        try:
            ended = executor.pump(PUMP_SECONDS)
        except StoreUnavailable:  # the executor dropped every job (see JobExecutor.pump)
            for job_id in held:
                self.notify(job_id)
            raise
        for job_id in ended:
            self.notify(job_id)


class LocalRunner:
    """The embedded default: a :class:`ExecutorLoop` that claims the store's queued jobs and runs
    them, several at once."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        blobs: BlobStore,
        notify: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self._executor = JobExecutor(settings, store, blobs, threading.Event())
        self._loop = ExecutorLoop(self._executor, self._claim_next, notify, self._executor.stopping)

    @property
    def busy(self) -> bool:
        return self._executor.in_flight > 0

    @property
    def loaded_paths(self) -> list[str]:
        return self._executor.loaded_paths

    @property
    def device(self) -> str | None:
        return self.settings.device_plan.device

    def start(self) -> None:
        """Re-queue (or fail) what a crash left processing, then start taking jobs."""
        outcomes = self.store.recover(self.settings.max_attempts)
        if outcomes:
            log.info("recovered %d interrupted jobs: %s", len(outcomes), ", ".join(outcomes))
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)
        self._executor.close()

    def wake(self) -> None:
        self._loop.wake()

    def _claim_next(self) -> JobRecord | None:
        return self.store.claim_next()
