"""Run one claimed job on the engine child: a job -> the engine process -> progress -> a
fenced finish.

:class:`JobExecutor` takes a claimed :class:`~whispercli.server.storage.store.JobRecord` (with
its attempt number), sends it to its :class:`~whispercli.server.engine.process.EngineProcess`,
relays progress and partial segments into the store, and records the outcome. Every write
names the attempt, so an executor that lost the job (re-queued, taken over, cancelled)
changes nothing. The embedded default's :class:`~whispercli.server.jobs.runner.LocalRunner`
and the PostgreSQL mode's queue worker both use it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from whispercli.protocol import Status
from whispercli.server.engine.process import (
    Cancelled,
    EngineConfig,
    EngineDied,
    EngineProcess,
    Evicted,
    Failed,
    Loaded,
    Progress,
    Succeeded,
    Transcribe,
)
from whispercli.server.jobs import models
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.blobs import BlobStore
from whispercli.server.storage.store import JobRecord, Store, StoreUnavailable

log = logging.getLogger("whispercli.server")

CANCEL_CHECK_SECONDS = 0.2
"""How often a running job's cancel flag is read."""
CANCEL_GRACE_SECONDS = 0.5
"""A cancelled job's engine gets this long to stop at a segment boundary before it is killed."""
PROGRESS_WRITE_INTERVAL = 0.3


def engine_config(settings: ServerSettings) -> EngineConfig:
    """The engine of ``settings``, preloading the packaged tiny model when it is there."""
    packaged = models.resolve("tiny", None)
    return EngineConfig(
        cpu_threads=settings.cpu_threads,
        speed=settings.speed,
        preload=str(packaged.path) if packaged else None,
        fake_seconds=settings.fake_engine_seconds,
        plan=settings.device_plan,
        max_loaded=settings.max_loaded_models,
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
        self.loaded_paths: list[str] = []
        """Model folders loaded in the engine child, least recently used first."""

    def ensure_engine(self) -> None:
        if not self.engine.alive:
            self.loaded_paths = []  # a new child starts empty
        self.engine.ensure_running(self.stopping)

    def drain_idle(self) -> None:
        """Between jobs: record the model loads and unloads the child reports."""
        while self.engine.alive:
            try:
                message = self.engine.receive(0)
            except EngineDied:
                return
            if message is None:
                return
            if isinstance(message, Loaded | Evicted):
                self._record_model(message)

    def _record_model(self, message: Loaded | Evicted) -> None:
        self.loaded_paths = list(message.loaded)
        if isinstance(message, Evicted):
            log.info("model %s unloaded (least recently used)", message.model_path)
            return
        device = self.settings.device_plan.device
        log.info("model %s loaded in %.2f s on %s", message.model_path, message.seconds, device)

    def run(self, job: JobRecord) -> None:
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
        except (EngineDied, OSError) as exc:
            if self.stopping.is_set():
                self.store.release(job.id, job.attempts)
                return
            if self.engine.alive:  # the pipe broke but the process lives: make it a crash
                self.engine.kill()
            reason = f"the transcription engine crashed ({self.engine.describe_exit()})"
            status = self.store.requeue_or_fail(
                job.id, job.attempts, reason, self.settings.max_attempts
            )
            log.warning("job %s: %s (%s); now %s", job.id, reason, type(exc).__name__, status)
            # the next ensure_engine restarts the engine process (with a back-off if it keeps dying)

    def _follow(self, job: JobRecord) -> None:
        """Relay the child's messages for ``job`` into the store until it ends."""
        began = time.monotonic()
        segments: list[dict[str, Any]] = []
        last_write = last_check = 0.0
        cancel_sent_at: float | None = None
        while True:
            if self.stopping.is_set():
                raise EngineDied("server stopping")
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
            if isinstance(message, Loaded | Evicted):
                self._record_model(message)
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

    def _finish(
        self, job: JobRecord, began: float, outcome: Succeeded | Failed | Cancelled
    ) -> None:
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
