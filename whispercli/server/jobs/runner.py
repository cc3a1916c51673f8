"""How jobs get run for the app: :class:`Runner` is what the app starts and stops.

- :class:`LocalRunner` (the embedded default) is one thread that claims the oldest queued jobs
  from the store, up to the executor's capacity, and hands them to a
  :class:`~whispercli.server.engine.executor.JobExecutor` (the engine decodes them together).
- :class:`NoRunner`: an API server whose jobs run on queue workers elsewhere (PostgreSQL mode,
  :mod:`whispercli.server.scale.worker`, which hands jobs to the same executor).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from whispercli.server.engine.executor import JobExecutor
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.blobs import BlobStore
from whispercli.server.storage.store import Store

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


class LocalRunner:
    """The embedded default: one thread claims queued jobs from the store and runs them,
    several at once."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        blobs: BlobStore,
        notify: Callable[[str], None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.notify = notify
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._executor = JobExecutor(settings, store, blobs, self._stopping)
        self._thread = threading.Thread(target=self._run, name="runner", daemon=True)

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
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self._executor.close()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("runner error; retrying in a second")
                self._stopping.wait(1.0)

    def _tick(self) -> None:
        """Fill the engine up to its capacity, then relay its news for a moment."""
        executor = self._executor
        executor.ensure_engine()
        self._wake.clear()
        # An engine lost while a job was handed over re-queued its jobs: claiming more before
        # the next tick restarts it would spend their attempts on a dead process.
        while (
            executor.in_flight < executor.capacity
            and executor.accepting
            and not self._stopping.is_set()
        ):
            job = self.store.claim_next()
            if job is None:
                break
            self.notify(job.id)
            for changed in executor.submit(job):
                self.notify(changed)
        if executor.in_flight == 0:
            executor.drain_idle()
            self._wake.wait(0.5)
            return
        for job_id in executor.pump(PUMP_SECONDS):
            self.notify(job_id)
