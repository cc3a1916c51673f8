"""Run claimed jobs on the engine child: a job -> the engine process -> progress -> a
fenced finish.

:class:`JobExecutor` takes a claimed :class:`~whispercli.server.storage.store.JobRecord` (with
its attempt number), sends it to its :class:`~whispercli.server.engine.process.EngineProcess`,
relays progress and partial segments into the store, and records the outcome. Every write
names the attempt, so an executor that lost the job (re-queued, taken over, cancelled)
changes nothing. A :class:`~whispercli.server.jobs.runner.ExecutorLoop` keeps it full: the embedded
default's with the store's queued jobs, the PostgreSQL mode's queue worker with its tasks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from whispercli.protocol import Status
from whispercli.server.engine.process import (
    Cancelled,
    EngineConfig,
    EngineDied,
    EngineProcess,
    Evicted,
    Failed,
    FromEngine,
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
"""A cancelled job's engine gets this long to confirm before the job is recorded cancelled
anyway (the engine drops its chunks; other jobs keep running, so it is not killed)."""
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
        max_audio_hours=settings.max_audio_hours,
    )


@dataclass
class _InFlight:
    """A job the engine process is working on, seen from the server."""

    job: JobRecord
    files: contextlib.ExitStack
    began: float = field(default_factory=time.monotonic)
    segments: list[dict[str, Any]] = field(default_factory=list)
    last_write: float = 0.0
    cancel_sent_at: float | None = None


class JobExecutor:
    """Runs claimed jobs on one engine child process, several at once (``capacity``).

    The engine decodes the chunks of every job in flight together (engine.batcher), so the
    runner keeps up to ``capacity`` jobs there. After an engine crash the jobs it had are
    re-queued and the next ones run one at a time until they are done, so a poison file
    crashes the engine on its own attempts only.
    """

    def __init__(
        self,
        settings: ServerSettings,
        store: Store,
        blobs: BlobStore,
        stopping: threading.Event,
    ) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.stopping = stopping
        self.engine = EngineProcess(engine_config(settings))
        self.loaded_paths: list[str] = []
        """Model folders loaded in the engine child, least recently used first."""
        self._jobs: dict[str, _InFlight] = {}
        self._solo = 0
        """Jobs left to run one at a time after a crash."""
        self._last_check = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    @property
    def job_ids(self) -> list[str]:
        """The jobs in flight, oldest first."""
        return list(self._jobs)

    def holds(self, job_id: str) -> bool:
        """Whether ``job_id`` is in flight here."""
        return job_id in self._jobs

    @property
    def capacity(self) -> int:
        return 1 if self._solo > 0 else max(1, self.settings.engine_jobs)

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

    # -- starting jobs -----------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        """Whether a job can be handed to the engine now (its process runs)."""
        return self.engine.alive

    def submit(self, job: JobRecord) -> list[str]:
        """Hand ``job`` to the engine. Returns the ids of the jobs whose state changed on the
        way, for the runner to tell their waiters: ``job`` if it ended at once (its model or
        upload gone), or every job in flight if the engine turned out to be gone (re-queued,
        or failed past their attempts)."""
        model = models.resolve(job.model, self.settings.models_dir)
        if model is None:
            error = f"model '{job.model}' is no longer installed"
            self.store.finish(job.id, job.attempts, Status.FAILED, error=error)
            return [job.id]
        files = contextlib.ExitStack()
        try:
            audio = files.enter_context(self.blobs.local_file(job.upload_id))
        except FileNotFoundError:
            files.close()
            error = "the upload of this job is gone (deleted or expired)"
            self.store.finish(job.id, job.attempts, Status.FAILED, error=error)
            return [job.id]
        self._jobs[job.id] = _InFlight(job, files)
        try:
            self.engine.send(Transcribe(job.id, str(model.path), str(audio), job.params))
        except (EngineDied, OSError) as exc:
            return self._engine_lost(exc)
        return []

    # -- following them ----------------------------------------------------------------------
    def pump(self, timeout: float) -> list[str]:
        """Relay the engine's messages into the store for ``timeout`` seconds at most; the ids
        of the jobs that ended."""
        ended: list[str] = []
        try:
            self._check_cancels(ended)
            deadline = time.monotonic() + timeout
            while self._jobs:
                if self.stopping.is_set():
                    raise EngineDied("server stopping")
                message = self.engine.receive(max(0.0, deadline - time.monotonic()))
                if message is None:
                    break
                self._handle(message, ended)
        except StoreUnavailable:
            # The database went away mid-job: stop decoding (nothing could be recorded); the
            # jobs stay processing and are taken over (one more attempt) once it is back.
            self.engine.kill()
            self._drop_all()
            raise
        except (EngineDied, OSError) as exc:
            ended.extend(self._engine_lost(exc))
        return ended

    def _check_cancels(self, ended: list[str]) -> None:
        now = time.monotonic()
        if now - self._last_check < CANCEL_CHECK_SECONDS:
            return
        self._last_check = now
        for flight in list(self._jobs.values()):
            if flight.cancel_sent_at is None:
                current = self.store.get_job(flight.job.id)
                if current is None or current.cancel_requested:
                    self.engine.cancel(flight.job.id)
                    flight.cancel_sent_at = now
            elif now - flight.cancel_sent_at > CANCEL_GRACE_SECONDS:
                # The engine has not confirmed yet (a chunk still decoding): the job is
                # cancelled all the same; what the engine says about it later is dropped.
                self._finish(flight, Cancelled(flight.job.id))
                ended.append(flight.job.id)

    def _handle(self, message: FromEngine, ended: list[str]) -> None:
        if isinstance(message, Loaded | Evicted):
            self._record_model(message)
            return
        flight = self._jobs.get(message.job_id)
        if flight is None:
            return
        if isinstance(message, Progress):
            if message.segment is not None:
                flight.segments.append(message.segment)
            now = time.monotonic()
            if now - flight.last_write >= PROGRESS_WRITE_INTERVAL:
                job = flight.job
                self.store.set_progress(job.id, job.attempts, message.progress, flight.segments)
                flight.last_write = now
            return
        if flight.cancel_sent_at is not None:  # finished before it saw the cancel: cancelled
            message = Cancelled(flight.job.id)
        self._finish(flight, message)
        ended.append(flight.job.id)

    def _engine_lost(self, exc: BaseException) -> list[str]:
        """The engine process died: re-queue (or fail) every job it had."""
        if self.stopping.is_set():
            return self.release_all()
        flights = self._drop_all()
        if self.engine.alive:  # the pipe broke but the process lives: make it a crash
            self.engine.kill()
        reason = f"the transcription engine crashed ({self.engine.describe_exit()})"
        # Which job crashed it is unknown: run those it had alone from now on. A job running
        # alone that crashes it keeps the count: the jobs it shared a crash with are still due.
        if len(flights) > 1:
            self._solo = max(self._solo, len(flights))
        for flight in flights:
            job = flight.job
            status = self.store.requeue_or_fail(
                job.id, job.attempts, reason, self.settings.max_attempts
            )
            log.warning("job %s: %s (%s); now %s", job.id, reason, type(exc).__name__, status)
        # the next ensure_engine restarts the engine process (with a back-off if it keeps dying)
        return [f.job.id for f in flights]

    def release_all(self) -> list[str]:
        """A clean stop: put every job in flight back in the queue, its attempt not counted;
        their ids."""
        flights = self._drop_all()
        for flight in flights:
            self.store.release(flight.job.id, flight.job.attempts)
        return [f.job.id for f in flights]

    def _drop_all(self) -> list[_InFlight]:
        flights = list(self._jobs.values())
        self._jobs.clear()
        for flight in flights:
            flight.files.close()
        return flights

    def _finish(self, flight: _InFlight, outcome: Succeeded | Failed | Cancelled) -> None:
        job = flight.job
        self._jobs.pop(job.id, None)
        flight.files.close()
        if self._solo > 0:
            self._solo -= 1
        if isinstance(outcome, Succeeded):
            status = Status.SUCCESS
            done = self.store.finish(job.id, job.attempts, status, result=outcome.result)
        elif isinstance(outcome, Failed):
            status = Status.FAILED
            done = self.store.finish(job.id, job.attempts, status, error=outcome.error)
        else:
            status = Status.CANCELLED
            done = self.store.finish(job.id, job.attempts, status)
        took = time.monotonic() - flight.began
        if done:
            log.info("job %s %s in %.2f s", job.id, status, took)
        else:
            log.warning("job %s %s in %.2f s, but it was taken away: dropped", job.id, status, took)

    def close(self) -> None:
        self._drop_all()
        self.engine.stop(idle=True)
