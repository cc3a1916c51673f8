"""The engine's process and the thread that supervises it.

The worker is a separate process (multiprocessing, spawn) that loads a model once and keeps it
loaded; a crash while decoding kills that process, never the server. The server's
:class:`Supervisor` thread claims the next queued job, hands it to the worker over a pipe,
records progress and the outcome in the store, and restarts the worker when it dies.

Messages worker -> server: ``("loaded", model_path, seconds, loaded_paths)``, ``("evicted",
model_path, loaded_paths)`` (the worker keeps ``--max-loaded-models`` models in a
:class:`~whispercli.server.modelcache.ModelCache`), ``("segment", job_id, progress,
segment)``, ``("success", job_id, result)``, ``("failed", job_id, error)``,
``("cancelled", job_id)``. Server -> worker: ``(job_id, model_path, audio_path, params)``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from whispercli.protocol import Status
from whispercli.server import models
from whispercli.server.device import DevicePlan
from whispercli.server.modelcache import ModelCache
from whispercli.server.settings import ServerSettings
from whispercli.server.store import Job, Store

log = logging.getLogger("whispercli.server")

CANCEL_GRACE_SECONDS = 5.0
"""A cancelled job's worker gets this long to stop at a segment boundary before it is killed."""
SWEEP_INTERVAL_SECONDS = 60.0
"""At most this long between retention sweeps (shorter when the retention itself is short)."""
MAX_RESTART_DELAY = 30.0
PROGRESS_WRITE_INTERVAL = 0.3


class _Cancelled(Exception):
    pass


def _exit_with_parent(parent_pid: int) -> None:
    """Die when the server dies (even by SIGKILL): an orphaned worker must not linger."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.5)


def worker_main(
    conn: Connection,
    cancels: Connection,
    cpu_threads: int,
    profile: str,
    preload: str | None,
    parent_pid: int,
    plan: DevicePlan,
    max_loaded: int,
) -> None:
    """Entry point of the worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when the worker stops
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()
    from whispercli.server.engine import AudioError, Engine

    def load(model_path: str) -> Engine:
        started = time.perf_counter()
        engine = Engine(model_path, cpu_threads=cpu_threads, profile=profile, plan=plan)
        seconds = time.perf_counter() - started
        conn.send(("loaded", model_path, seconds, [*cache.loaded(), model_path]))
        return engine

    cache: ModelCache[Engine] = ModelCache(
        load, max_loaded, lambda path: conn.send(("evicted", path, cache.loaded()))
    )
    if preload:
        cache.acquire(preload)
        cache.release(preload)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:  # asked to stop: return so the process exits cleanly
            return
        job_id, model_path, audio_path, params = message

        def on_segment(segment: dict[str, Any], progress: float, job_id: str = job_id) -> None:
            while cancels.poll():  # cancel requests arrive as job ids on their own pipe
                if cancels.recv() == job_id:
                    raise _Cancelled
            conn.send(("segment", job_id, progress, segment))

        try:
            with cache.use(model_path) as engine:
                result = engine.transcribe(audio_path, params, on_segment)
        except _Cancelled:
            conn.send(("cancelled", job_id))
        except AudioError as exc:
            conn.send(("failed", job_id, str(exc)))
        except Exception as exc:
            conn.send(("failed", job_id, f"transcription failed: {type(exc).__name__}: {exc}"))
        else:
            conn.send(("success", job_id, result))


class WorkerDied(Exception):
    pass


class Supervisor:
    """Runs queued jobs one at a time on the worker process; owns that process."""

    def __init__(
        self, store: Store, settings: ServerSettings, notify: Callable[[str], None]
    ) -> None:
        self.store = store
        self.settings = settings
        self.notify = notify
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._cancels: Connection | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._last_sweep = 0.0
        self._quick_deaths = 0
        self._worker_started = 0.0
        self.busy = False
        self.model_load_seconds: dict[str, float] = {}
        self.loaded_paths: list[str] = []
        """Model folders loaded in the worker, least recently used first."""

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        self._stop_worker()

    def wake(self) -> None:
        """A job was queued: claim it now rather than at the next tick."""
        self._wake.set()

    @property
    def worker_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.is_alive() else None

    def _start_worker(self) -> None:
        packaged = models.resolve("tiny", None)
        parent, child = self._ctx.Pipe()
        cancel_reader, cancel_writer = self._ctx.Pipe(duplex=False)
        self._proc = self._ctx.Process(
            target=worker_main,
            args=(
                child,
                cancel_reader,
                self.settings.cpu_threads,
                self.settings.speed,
                str(packaged.path) if packaged else None,
                os.getpid(),
                self.settings.device_plan,
                self.settings.max_loaded_models,
            ),
            name="whispercli-worker",
            daemon=True,
        )
        self.loaded_paths = []
        self._proc.start()
        child.close()
        cancel_reader.close()
        self._conn = parent
        self._cancels = cancel_writer
        log.info("worker process %s started", self._proc.pid)

    def _restart_worker(self) -> None:
        """Start a worker; back off when they keep dying right after start (e.g. a bad model)."""
        if self._proc is not None:
            quick = time.monotonic() - self._worker_started < 5
            self._quick_deaths = self._quick_deaths + 1 if quick else 0
            self._stop_worker()
            if self._quick_deaths:
                delay = min(MAX_RESTART_DELAY, 2.0**self._quick_deaths)
                log.warning("worker keeps exiting; restarting it in %.0f s", delay)
                if self._stopping.wait(delay):
                    return
        self._worker_started = time.monotonic()
        self._start_worker()

    def _stop_worker(self) -> None:
        """Ask the worker to exit (it does between jobs), then terminate it, then kill it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.is_alive() and self._conn is not None and not self.busy:
            with contextlib.suppress(OSError):
                self._conn.send(None)
            proc.join(3)
        for conn in (self._conn, self._cancels):
            if conn is not None:
                conn.close()
        self._conn = self._cancels = None
        if proc is None:
            return
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)

    # -- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception:
                log.exception("supervisor error; retrying in a second")
                self._stopping.wait(1.0)

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep > min(SWEEP_INTERVAL_SECONDS, self.settings.retention / 4):
            self._last_sweep = now
            removed = self.store.sweep(self.settings.retention)
            if removed:
                log.info("retention sweep removed %d old jobs/uploads", removed)
        if self._proc is None or not self._proc.is_alive():
            self._restart_worker()
        self._wake.clear()
        job = self.store.claim_next()
        if job is None:
            self._drain_idle_messages()
            self._wake.wait(0.5)
            return
        self.notify(job.id)
        self.busy = True
        try:
            self._run_job(job)
        finally:
            self.busy = False
            self.notify(job.id)

    def _drain_idle_messages(self) -> None:
        while self._conn is not None and self._conn.poll(0):
            try:
                kind, *rest = self._conn.recv()
            except (EOFError, OSError):
                return
            if kind in ("loaded", "evicted"):
                self._record_model(kind, *rest)

    def _record_model(self, kind: str, path: str, *rest: Any) -> None:
        self.loaded_paths = list(rest[-1])
        if kind == "evicted":
            log.info("model %s unloaded (least recently used)", path)
            return
        self.model_load_seconds[path] = rest[0]
        log.info("model %s loaded in %.2f s on %s", path, rest[0], self.settings.device_plan.device)

    def _run_job(self, job: Job) -> None:
        model = models.resolve(job.model, self.settings.models_dir)
        if model is None:
            self.store.finish(
                job.id, Status.FAILED, error=f"model '{job.model}' is no longer installed"
            )
            return
        assert self._conn is not None
        audio = self.store.upload_path(job.upload_id)
        try:
            self._conn.send((job.id, str(model.path), str(audio), job.params))
            self._follow(job)
        except (WorkerDied, EOFError, OSError, BrokenPipeError) as exc:
            if self._stopping.is_set():
                return  # shutting down: _follow already put the job back
            proc = self._proc
            if proc is not None:
                proc.join(1)
                if proc.is_alive():  # the pipe broke but the process lives: make it a crash
                    proc.kill()
                    proc.join(5)
            code = proc.exitcode if proc is not None else None
            how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
            reason = f"the transcription worker crashed ({how})"
            status = self.store.requeue_or_fail(job.id, reason, self.settings.max_attempts)
            log.warning("job %s: %s (%s); now %s", job.id, reason, type(exc).__name__, status)
            # the next tick restarts the worker (with a back-off if it keeps dying)

    def _follow(self, job: Job) -> None:
        """Relay the worker's messages for ``job`` into the store until it ends."""
        assert self._conn is not None
        began = time.monotonic()
        segments: list[dict[str, Any]] = []
        progress = 0.0
        last_write = 0.0
        cancel_sent_at: float | None = None
        while True:
            if self._stopping.is_set():
                self.store.release(job.id)
                raise WorkerDied("server stopping")
            if not self._conn.poll(0.2):
                if not self._proc.is_alive():
                    raise WorkerDied("worker exited")
                if cancel_sent_at is None:
                    current = self.store.get_job(job.id)
                    if current is None or current.cancel_requested:
                        assert self._cancels is not None
                        self._cancels.send(job.id)
                        cancel_sent_at = time.monotonic()
                elif time.monotonic() - cancel_sent_at > CANCEL_GRACE_SECONDS:
                    self._stop_worker()
                    self.store.finish(job.id, Status.CANCELLED)
                    return
                continue
            kind, *rest = self._conn.recv()
            if kind in ("loaded", "evicted"):
                self._record_model(kind, *rest)
                continue
            if rest[0] != job.id:
                continue
            if kind == "segment":
                progress = float(rest[1])
                segments.append(rest[2])
                now = time.monotonic()
                if now - last_write >= PROGRESS_WRITE_INTERVAL:
                    self.store.set_progress(job.id, progress, segments)
                    last_write = now
                continue
            if cancel_sent_at is not None:  # finished before it saw the cancel: still cancelled
                self.store.finish(job.id, Status.CANCELLED)
            elif kind == "success":
                self.store.finish(job.id, Status.SUCCESS, result=rest[1])
            elif kind == "failed":
                self.store.finish(job.id, Status.FAILED, error=rest[1])
            elif kind == "cancelled":
                self.store.finish(job.id, Status.CANCELLED)
            log.info("job %s %s in %.2f s", job.id, kind, time.monotonic() - began)
            return
