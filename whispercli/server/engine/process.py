"""The engine's child process and the typed messages on its pipes.

The child (multiprocessing, spawn) keeps up to ``max_loaded`` models loaded (a
:class:`~.modelcache.ModelCache`, least recently used unloaded first); a crash while decoding
kills that process, never the server. :class:`EngineProcess` owns it on the parent's side:
start, restart with a back-off, send a job, receive messages, cancel, kill.

Parent -> child (``conn``): :class:`Transcribe`, :class:`Stop`; (``cancels``): :class:`Cancel`.
Child -> parent: :class:`Loaded`, :class:`Evicted`, :class:`Progress`, then one outcome per job:
:class:`Succeeded`, :class:`Failed` or :class:`Cancelled`.
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
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from whispercli.server.defaults import Defaults
from whispercli.server.engine import memory
from whispercli.server.engine.device import DevicePlan, cpu_plan
from whispercli.server.engine.modelcache import DEFAULT_MAX_LOADED, ModelCache
from whispercli.server.engine.outcome import JobCancelled, JobInputError

log = logging.getLogger("whispercli.server")

MAX_RESTART_DELAY = 30.0
QUICK_DEATH_SECONDS = 5.0
"""A child that dies this soon after its start counts towards the restart back-off."""


@dataclass(frozen=True)
class EngineConfig:
    """How the child builds its engine (one per process, shared by every job)."""

    cpu_threads: int = 0
    speed: str = "default"
    preload: str | None = None
    """A model folder to load at start, before the first job asks for it."""
    fake_seconds: float | None = None
    """Run :class:`~whispercli.server.engine.fake.FakeEngine` (that many seconds a job)."""
    plan: DevicePlan = field(default_factory=lambda: cpu_plan("int8", "default"))
    """Where and how the engine decodes (whispercli.server.engine.device)."""
    max_loaded: int = DEFAULT_MAX_LOADED
    """Models the child keeps loaded (least recently used unloaded first)."""
    max_audio_hours: float = Defaults.max_audio_hours
    """Longer audio fails its job (checked from the header, then while decoding)."""


# -- messages -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transcribe:
    job_id: str
    model_path: str
    audio_path: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Stop:
    """Exit between jobs."""


@dataclass(frozen=True)
class Cancel:
    job_id: str


@dataclass(frozen=True)
class Loaded:
    model_path: str
    seconds: float
    loaded: tuple[str, ...]
    """Every model folder loaded now, least recently used first."""


@dataclass(frozen=True)
class Evicted:
    """A model was unloaded to make room (``max_loaded``)."""

    model_path: str
    loaded: tuple[str, ...]


@dataclass(frozen=True)
class Progress:
    job_id: str
    progress: float
    segment: dict[str, Any] | None
    """None: progress alone (engine.SegmentCallback)."""


@dataclass(frozen=True)
class Succeeded:
    job_id: str
    result: dict[str, Any]


@dataclass(frozen=True)
class Failed:
    job_id: str
    error: str


@dataclass(frozen=True)
class Cancelled:
    job_id: str


Outcome = Succeeded | Failed | Cancelled
FromEngine = Loaded | Evicted | Progress | Outcome


# -- the child ----------------------------------------------------------------------------------
def _exit_with_parent(parent_pid: int) -> None:
    """Die when the server dies (even by SIGKILL): an orphaned engine must not linger."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.5)


def _thread_lock_for_tqdm() -> None:
    """faster-whisper's tqdm makes a multiprocessing lock on first use: a child killed
    mid-job (a cancel, a crash) leaks its semaphore and the server's resource tracker warns at
    shutdown. Nothing here shares tqdm across processes, so a thread lock does."""
    with contextlib.suppress(ImportError):
        from tqdm import tqdm

        tqdm.set_lock(threading.RLock())


def _engine_factory(config: EngineConfig) -> Callable[[str], Any]:
    """How to build the engine for a model folder."""
    fake_seconds = config.fake_seconds
    if fake_seconds is not None:
        from whispercli.server.engine.fake import FakeEngine

        return lambda path: FakeEngine(path, seconds=fake_seconds)
    from whispercli.server.engine.whisper import Engine

    def make(path: str) -> Engine:
        return Engine(
            path,
            cpu_threads=config.cpu_threads,
            speed=config.speed,
            plan=config.plan,
            max_audio_hours=config.max_audio_hours,
        )

    return make


class _Child:
    """The engine process's state: loaded models, running jobs, one lock on the pipe."""

    def __init__(self, conn: Connection, config: EngineConfig) -> None:
        self.conn = conn
        self._send_lock = threading.Lock()
        self.make_engine = _engine_factory(config)
        self.running: dict[str, Any] = {}
        """Job id -> the engine decoding it."""
        self.lock = threading.Lock()
        self.cache: ModelCache[Any] = ModelCache(
            self._load,
            config.max_loaded,
            lambda path: self.send(Evicted(path, tuple(self.cache.loaded()))),
            close=lambda engine: engine.close(),
        )

    def send(self, message: FromEngine) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _load(self, model_path: str) -> Any:
        started = time.perf_counter()
        engine = self.make_engine(model_path)
        seconds = time.perf_counter() - started
        self.send(Loaded(model_path, seconds, (*self.cache.loaded(), model_path)))
        return engine

    def start(self, message: Transcribe) -> None:
        job_id = message.job_id
        try:
            engine = self.cache.acquire(message.model_path)
        except Exception as exc:
            self.send(Failed(job_id, f"transcription failed: {type(exc).__name__}: {exc}"))
            return
        with self.lock:
            self.running[job_id] = engine
        engine.start(job_id, message.audio_path, message.params, _Sink(self, job_id, message))

    def cancel(self, job_id: str) -> None:
        with self.lock:
            engine = self.running.get(job_id)
        if engine is not None:
            engine.cancel(job_id)

    def finish(self, job_id: str, model_path: str, outcome: Outcome) -> None:
        with self.lock:
            self.running.pop(job_id, None)
            idle = not self.running
        self.cache.release(model_path)
        self.send(outcome)
        if idle:  # after the answer: nobody waits for this
            memory.give_back()


class _Sink:
    """One job's news, sent to the server as typed messages."""

    def __init__(self, child: _Child, job_id: str, message: Transcribe) -> None:
        self.child = child
        self.job_id = job_id
        self.model_path = message.model_path

    def segment(self, segment: dict[str, Any] | None, progress: float) -> None:
        self.child.send(Progress(self.job_id, progress, segment))

    def done(self, result: dict[str, Any] | None, error: BaseException | None) -> None:
        outcome: Outcome
        if error is None and result is not None:
            outcome = Succeeded(self.job_id, result)
        elif isinstance(error, JobCancelled):
            outcome = Cancelled(self.job_id)
        elif isinstance(error, JobInputError):
            outcome = Failed(self.job_id, str(error))
        else:
            outcome = Failed(self.job_id, f"transcription failed: {type(error).__name__}: {error}")
        self.child.finish(self.job_id, self.model_path, outcome)


def _read_cancels(cancels: Connection, child: _Child) -> None:
    while True:
        try:
            message = cancels.recv()
        except (EOFError, OSError):
            return
        if isinstance(message, Cancel):
            child.cancel(message.job_id)


def _trim_while_busy(child: _Child) -> None:
    """Hand free heap memory back while jobs run (engine.memory says why)."""
    while True:
        time.sleep(memory.TRIM_SECONDS)
        if child.running:
            memory.give_back()


def engine_main(conn: Connection, cancels: Connection, config: EngineConfig) -> None:
    """Entry point of the child process: jobs start as they arrive and run side by side."""
    memory.tune_heap()  # before any decoding thread makes its own arena
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server decides when the engine stops
    parent = os.getppid()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    _thread_lock_for_tqdm()
    child = _Child(conn, config)
    threading.Thread(target=_read_cancels, args=(cancels, child), daemon=True).start()
    if memory.available():
        threading.Thread(target=_trim_while_busy, args=(child,), daemon=True).start()
    if config.preload:
        child.cache.acquire(config.preload)
        child.cache.release(config.preload)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if not isinstance(message, Transcribe):  # Stop: return so the process exits cleanly
            return
        child.start(message)


# -- the parent's side --------------------------------------------------------------------------
class EngineDied(Exception):
    pass


class EngineProcess:
    """The child process seen from the parent; used by one thread at a time."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        self._cancels: Connection | None = None
        self._started = 0.0
        self._quick_deaths = 0
        self._killed = False

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def describe_exit(self) -> str:
        code = self._proc.exitcode if self._proc is not None else None
        return f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"

    def ensure_running(self, stopping: threading.Event) -> None:
        """Start the child unless it runs; back off when children keep dying right after
        their start (e.g. a model that cannot load)."""
        if self.alive:
            return
        if self._proc is not None:
            quick = not self._killed and time.monotonic() - self._started < QUICK_DEATH_SECONDS
            self._quick_deaths = self._quick_deaths + 1 if quick else 0
            self.stop(idle=False)
            if self._quick_deaths:
                delay = min(MAX_RESTART_DELAY, 2.0**self._quick_deaths)
                log.warning("the engine process keeps exiting; restarting it in %.0f s", delay)
                if stopping.wait(delay):
                    return
        parent, child = self._ctx.Pipe()
        cancel_reader, cancel_writer = self._ctx.Pipe(duplex=False)
        self._proc = self._ctx.Process(
            target=engine_main,
            args=(child, cancel_reader, self.config),
            name="whispercli-engine",
            daemon=True,
        )
        self._proc.start()
        child.close()
        cancel_reader.close()
        self._conn, self._cancels = parent, cancel_writer
        self._started, self._killed = time.monotonic(), False
        log.info("engine process %s started", self._proc.pid)

    def send(self, message: Transcribe) -> None:
        if self._conn is None:
            raise EngineDied("no engine process")
        self._conn.send(message)

    def cancel(self, job_id: str) -> None:
        if self._cancels is not None:
            with contextlib.suppress(OSError):
                self._cancels.send(Cancel(job_id))

    def receive(self, timeout: float) -> FromEngine | None:
        """The next message, or None after ``timeout``; EngineDied when the child is gone."""
        if self._conn is None:
            raise EngineDied("no engine process")
        try:
            if not self._conn.poll(timeout):
                if not self.alive:
                    raise EngineDied("engine process exited")
                return None
            message: FromEngine = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise EngineDied(str(exc) or type(exc).__name__) from exc
        return message

    def kill(self) -> None:
        """SIGKILL the child now (a cancel that did not stop in time); the next
        ``ensure_running`` starts a fresh one without counting this as a crash."""
        self._killed = True
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)

    def stop(self, *, idle: bool) -> None:
        """Ask an ``idle`` child to exit, then terminate it, then kill it."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.is_alive() and self._conn is not None and idle:
            with contextlib.suppress(OSError):
                self._conn.send(Stop())
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
