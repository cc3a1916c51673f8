"""The worker side: run a job on the engine child, separate from how jobs arrive.

- :class:`JobExecutor` takes one claimed job (a :class:`~whispercli.server.store.Job` with its
  attempt number) -> the engine in its child process -> progress -> a fenced finish. Every
  write it makes names the attempt, so a worker that lost the job changes nothing.
- :class:`Runner` is what the app starts and stops; :class:`LocalRunner` (the embedded
  default) is one thread that claims the oldest queued job from the store and executes it.
  A queue-fed worker (PostgreSQL mode) hands jobs to the same executor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from whispercli.protocol import Status
from whispercli.server import models
from whispercli.server.blobs import BlobStore
from whispercli.server.settings import ServerSettings
from whispercli.server.store import Job, Store, StoreUnavailable
from whispercli.server.worker import (
    Cancelled,
    EngineConfig,
    EngineProcess,
    Failed,
    Loaded,
    Progress,
    Succeeded,
    Transcribe,
    WorkerDied,
)

log = logging.getLogger("whispercli.server")

CANCEL_CHECK_SECONDS = 0.2
"""How often a running job's cancel flag is read."""
CANCEL_GRACE_SECONDS = 0.5
"""A cancelled job's engine gets this long to stop at a segment boundary before it is killed."""
PROGRESS_WRITE_INTERVAL = 0.3


class Runner(Protocol):
    """What runs jobs for the app: started and stopped by its lifespan."""

    @property
    def busy(self) -> bool:
        """A job is running (the idle exit waits for it)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wake(self) -> None:
        """A job was queued: look for it now rather than at the next tick."""
        ...


class NoRunner:
    """The runner of an API server whose jobs run on workers elsewhere (shared storage)."""

    busy = False

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def wake(self) -> None:
        pass


def engine_config(settings: ServerSettings) -> EngineConfig:
    """The engine of ``settings``, preloading the packaged tiny model when it is there."""
    packaged = models.resolve("tiny", None)
    return EngineConfig(
        cpu_threads=settings.cpu_threads,
        speed=settings.speed,
        preload=str(packaged.path) if packaged else None,
        fake_seconds=settings.fake_engine_seconds,
    )


class JobExecutor:
    """Runs claimed jobs one at a time on one engine child process."""

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        blobs: BlobStore,
        notify: Callable[[str], None],
        stopping: threading.Event,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.notify = notify
        self.stopping = stopping
        self.engine = EngineProcess(engine_config(settings))

    def ensure_engine(self) -> None:
        self.engine.ensure_running(self.stopping)

    def drain_idle(self) -> None:
        """Between jobs: log model loads the child reports."""
        while self.engine.alive:
            try:
                message = self.engine.receive(0)
            except WorkerDied:
                return
            if message is None:
                return
            if isinstance(message, Loaded):
                _log_load(message)

    def run(self, job: Job) -> None:
        model = models.resolve(job.model, self.settings.models_dir)
        if model is None:
            error = f"model '{job.model}' is no longer installed"
            self.store.finish(job.id, job.attempts, Status.FAILED, error=error)
            return
        try:
            with self.blobs.local_file(job.upload_id) as audio:
                self.engine.send(Transcribe(job.id, str(model.path), str(audio), job.params))
                self._follow(job)
        except FileNotFoundError:
            error = "the upload of this job is gone (deleted or expired)"
            self.store.finish(job.id, job.attempts, Status.FAILED, error=error)
        except StoreUnavailable:
            # The database went away mid-job: stop decoding (nothing could be recorded); the
            # job stays processing and is taken over (one more attempt) once it is back.
            self.engine.kill()
            raise
        except (WorkerDied, OSError) as exc:
            if self.stopping.is_set():
                self.store.release(job.id, job.attempts)
                return
            if self.engine.alive:  # the pipe broke but the process lives: make it a crash
                self.engine.kill()
            reason = f"the transcription worker crashed ({self.engine.describe_exit()})"
            status = self.store.requeue_or_fail(
                job.id, job.attempts, reason, self.settings.max_attempts
            )
            log.warning("job %s: %s (%s); now %s", job.id, reason, type(exc).__name__, status)
            # the next ensure_engine restarts the worker (with a back-off if it keeps dying)

    def _follow(self, job: Job) -> None:
        """Relay the child's messages for ``job`` into the store until it ends."""
        began = time.monotonic()
        segments: list[dict[str, Any]] = []
        last_write = last_check = 0.0
        cancel_sent_at: float | None = None
        while True:
            if self.stopping.is_set():
                raise WorkerDied("server stopping")
            now = time.monotonic()
            if cancel_sent_at is None and now - last_check >= CANCEL_CHECK_SECONDS:
                last_check = now
                current = self.store.get_job(job.id)
                if current is None or current.cancel_requested:
                    self.engine.cancel(job.id)
                    cancel_sent_at = now
            if cancel_sent_at is not None and now - cancel_sent_at > CANCEL_GRACE_SECONDS:
                self.engine.kill()
                self._finish(job, began, Cancelled(job.id))
                return
            message = self.engine.receive(CANCEL_CHECK_SECONDS / 2)
            if message is None:
                continue
            if isinstance(message, Loaded):
                _log_load(message)
                continue
            if message.job_id != job.id:
                continue
            if isinstance(message, Progress):
                if message.segment is not None:
                    segments.append(message.segment)
                if now - last_write >= PROGRESS_WRITE_INTERVAL:
                    self.store.set_progress(job.id, job.attempts, message.progress, segments)
                    last_write = now
                continue
            if cancel_sent_at is not None:  # finished before it saw the cancel: still cancelled
                message = Cancelled(job.id)
            self._finish(job, began, message)
            return

    def _finish(self, job: Job, began: float, outcome: Succeeded | Failed | Cancelled) -> None:
        if isinstance(outcome, Succeeded):
            status = Status.SUCCESS
            done = self.store.finish(job.id, job.attempts, status, result=outcome.result)
        elif isinstance(outcome, Failed):
            status = Status.FAILED
            done = self.store.finish(job.id, job.attempts, status, error=outcome.error)
        else:
            status = Status.CANCELLED
            done = self.store.finish(job.id, job.attempts, status)
        took = time.monotonic() - began
        if done:
            log.info("job %s %s in %.2f s", job.id, status, took)
        else:
            log.warning("job %s %s in %.2f s, but it was taken away: dropped", job.id, status, took)

    def close(self) -> None:
        self.engine.stop(idle=True)


def _log_load(message: Loaded) -> None:
    log.info("model %s loaded in %.2f s", message.model_path, message.seconds)


class LocalRunner:
    """The embedded default: one thread claims queued jobs from the store and runs them."""

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
        self._executor = JobExecutor(settings, store, blobs, notify, self._stopping)
        self._thread = threading.Thread(target=self._run, name="runner", daemon=True)
        self._busy = False

    @property
    def busy(self) -> bool:
        return self._busy

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
        self._executor.ensure_engine()
        self._wake.clear()
        job = self.store.claim_next()
        if job is None:
            self._executor.drain_idle()
            self._wake.wait(0.5)
            return
        self.notify(job.id)
        self._busy = True
        try:
            self._executor.run(job)
        finally:
            self._busy = False
            self.notify(job.id)
