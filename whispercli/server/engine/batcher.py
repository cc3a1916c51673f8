"""Chunks of every running job, decoded together: the engine's scheduler.

The server sees every job in flight, the pipeline sees one file. So the engine process puts
the chunks (engine.speech) of all its running jobs in one place, and ``replicas`` decoding
threads (one per model replica: device.EnginePlan) each take a *batch* of up to ``batch_size``
chunks at a time -- one encoder call and one batched decode for all of them, whichever jobs
they come from -- and hand each job its own results:

- *fair*: a batch takes chunks from the jobs round-robin, so a short job queued behind a long
  one waits for one batch, not for the whole long file;
- *in order*: a job's results are handed back in time order as soon as every earlier chunk of
  that job is done (replicas finish out of order);
- *busy to the end*: the queue's last chunk is cut in halves when another replica would
  otherwise wait idle (``TAIL_SPLIT_SECONDS``);
- *bounded*: each job's feeder (its audio decoding and VAD) stays at most ``read_ahead`` chunks
  ahead of decoding, so memory does not grow with the file;
- *isolated*: a batch that fails is decoded again chunk by chunk, and only the job whose chunk
  still fails is failed; a cancelled job's chunks are dropped at once.

Only batches of jobs with the same decoding options (``JobChunks.key``: beam, language, task...)
are formed. The decoding itself is a callable (whisper.Engine passes faster-whisper's), so
this module is tested with a fake one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from whispercli.server.engine.outcome import JobCancelled
from whispercli.server.engine.speech import Chunk

log = logging.getLogger("whispercli.server")

R = TypeVar("R")
TICK_SECONDS = 1.0
"""How often running jobs hear about their progress while a batch decodes."""
PRIOR_SECONDS_PER_SECOND = 0.1
"""Decoding wall seconds per second of speech assumed until a batch has been timed."""
TAIL_SPLIT_SECONDS = 16.0
"""The queue's last chunk is cut in halves (at the pause nearest its middle) when it holds
this much speech or more and the job has no chunk to come, so that a second replica decodes
one half instead of waiting idle while the first decodes the whole: a lone 98 s file makes
three chunks, and two replicas would otherwise spend a third of its time on one thread. The
halves are encoded in windows sized to them (engine.decode), so a replica that ends up
decoding both pays about what the whole chunk costs."""


@dataclass(eq=False)
class JobChunks(Generic[R]):
    """One job's chunks on their way through the scheduler, and what it is told back.

    ``on_result(chunk, result)`` gets each chunk's result in order; ``on_progress(decoded
    seconds)`` while a batch of it decodes; ``on_done(error)`` once, with None on success.
    They run on the scheduler's threads, one at a time per job.
    """

    id: str
    key: Hashable
    on_result: Callable[[Chunk, R], None]
    on_done: Callable[[BaseException | None], None]
    on_progress: Callable[[float], None] | None = None
    pending: deque[Chunk] = field(default_factory=deque)
    produced: int = 0
    fed: bool = False
    """The feeder has produced every chunk."""
    ended: bool = False
    results: dict[int, tuple[Chunk, R]] = field(default_factory=dict)
    emitted: int = 0
    decoded_seconds: float = 0.0
    running: dict[int, tuple[float, float, float]] = field(default_factory=dict)
    """Chunk index -> (start time, its speech seconds, expected wall seconds) of what is
    decoding now."""
    lock: threading.RLock = field(default_factory=threading.RLock)
    """Reentrant: a callback may cancel its own job."""


class Scheduler(Generic[R]):
    """``replicas`` threads decoding batches of chunks from every job added."""

    def __init__(
        self,
        decode: Callable[[Sequence[tuple[JobChunks[R], Chunk]]], list[R]],
        *,
        replicas: int,
        batch_size: int,
        read_ahead: int | None = None,
    ) -> None:
        self.decode = decode
        self.replicas = max(1, replicas)
        self.batch_size = max(1, batch_size)
        self.read_ahead = read_ahead or 2 * max(1, replicas) * self.batch_size
        self._jobs: list[JobChunks[R]] = []
        self._turn = 0
        self._cond = threading.Condition()
        self._stopping = False
        self.seconds_per_second = PRIOR_SECONDS_PER_SECOND
        self._threads = [
            threading.Thread(target=self._replica, name=f"engine-replica-{i}", daemon=True)
            for i in range(self.replicas)
        ]
        self._threads.append(threading.Thread(target=self._ticker, name="engine-tick", daemon=True))
        for thread in self._threads:
            thread.start()

    # -- the feeder's side -----------------------------------------------------------------
    def add(self, job: JobChunks[R]) -> None:
        with self._cond:
            self._jobs.append(job)

    def feed(self, job: JobChunks[R], chunks: Iterable[Chunk]) -> None:
        """Queue ``chunks`` of ``job`` (an iterator that decodes audio as it goes), waiting
        while the job is ``read_ahead`` chunks ahead; then mark the job fed. Raises
        :class:`JobCancelled` if the job ends meanwhile (cancelled or failed)."""
        for chunk in chunks:
            with self._cond:
                while not job.ended and len(job.pending) + len(job.running) >= self.read_ahead:
                    self._cond.wait(0.5)
                if job.ended:
                    raise JobCancelled(job.id)
                job.pending.append(chunk)
                job.produced += 1
                job.fed = chunk.last
                self._cond.notify_all()
        with self._cond:
            job.fed = True
        self._maybe_done(job)

    def fail(self, job: JobChunks[R], error: BaseException) -> None:
        """End ``job`` with ``error`` (its feeder could not read the audio)."""
        self._end(job, error)

    def cancel(self, job_id: str) -> bool:
        """Drop the chunks of ``job_id``; True if it was running here."""
        with self._cond:
            job = next((j for j in self._jobs if j.id == job_id), None)
            if job is None or job.ended:
                return False
        self._end(job, JobCancelled(job_id))
        return True

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    # -- the replicas' side ----------------------------------------------------------------
    def _take(self) -> list[tuple[JobChunks[R], Chunk]]:
        """The next batch, round-robin over the jobs with chunks waiting (lock held)."""
        ready = [j for j in self._jobs if j.pending and not j.ended]
        if not ready:
            return []
        if len(ready) == 1:
            self._split_tail(ready[0])
        start = self._turn % len(ready)
        order = ready[start:] + ready[:start]
        self._turn += 1
        key = order[0].key
        batch: list[tuple[JobChunks[R], Chunk]] = []
        while len(batch) < self.batch_size:
            took = False
            for job in order:
                if job.key == key and job.pending and len(batch) < self.batch_size:
                    chunk = job.pending.popleft()
                    expected = self.seconds_per_second * chunk.seconds
                    job.running[chunk.index] = (time.monotonic(), chunk.seconds, expected)
                    batch.append((job, chunk))
                    took = True
            if not took:
                break
        return batch

    def _split_tail(self, job: JobChunks[R]) -> None:
        """Cut the queue's last chunk in two if a second replica could take a half (lock
        held; ``job`` is the only one with chunks waiting)."""
        if self.replicas < 2 or not job.fed or len(job.pending) != 1:
            return
        chunk = job.pending[0]
        if chunk.seconds < TAIL_SPLIT_SECONDS or len(chunk.spans) < 2:
            return
        job.pending = deque(chunk.halves())  # the job's last chunk: the second half is next
        job.produced += 1
        self._cond.notify_all()

    def _replica(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
                while not batch and not self._stopping:
                    self._cond.wait()
                    batch = self._take()
                if self._stopping:
                    return
            started = time.monotonic()
            outcomes = self._decode(batch)
            self._learn(batch, time.monotonic() - started)
            for (job, chunk), outcome in zip(batch, outcomes, strict=True):
                self._deliver(job, chunk, outcome)

    def _decode(self, batch: list[tuple[JobChunks[R], Chunk]]) -> list[R | BaseException]:
        """Decode ``batch``; if it fails, each chunk alone, so one bad chunk fails one job."""
        try:
            return list(self.decode(batch))
        except Exception as exc:
            if len(batch) == 1:
                return [exc]
            log.warning(
                "a batch of %d chunks failed (%s); decoding them one by one", len(batch), exc
            )
        outcomes: list[R | BaseException] = []
        for item in batch:
            try:
                outcomes.extend(self.decode([item]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _learn(self, batch: list[tuple[JobChunks[R], Chunk]], seconds: float) -> None:
        speech = sum(chunk.seconds for _, chunk in batch)
        if speech > 0:
            self.seconds_per_second = (self.seconds_per_second + seconds / speech) / 2

    def _deliver(self, job: JobChunks[R], chunk: Chunk, outcome: R | BaseException) -> None:
        with self._cond:
            job.running.pop(chunk.index, None)
            self._cond.notify_all()
        if isinstance(outcome, BaseException):
            self._end(job, outcome)
            return
        with job.lock:
            if job.ended:
                return
            job.results[chunk.index] = (chunk, outcome)
            while job.emitted in job.results:
                done, result = job.results.pop(job.emitted)
                job.emitted += 1
                job.decoded_seconds += done.seconds
                try:
                    job.on_result(done, result)
                except Exception as exc:  # the job's own callback failed: end that job
                    job.results.clear()
                    self._end(job, exc)
                    return
        self._maybe_done(job)

    def _maybe_done(self, job: JobChunks[R]) -> None:
        with self._cond:
            finished = job.fed and job.emitted == job.produced and not job.ended
        if finished:
            self._end(job, None)

    def _end(self, job: JobChunks[R], error: BaseException | None) -> None:
        with self._cond:
            if job.ended:
                return
            job.ended = True
            job.pending.clear()
            if job in self._jobs:
                self._jobs.remove(job)
            self._cond.notify_all()
        with job.lock:  # reentrant: a callback that fails ends its job from inside the lock
            job.on_done(error)

    # -- progress while a batch decodes ----------------------------------------------------
    def _ticker(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            with self._cond:
                if self._stopping:
                    return
                jobs = [j for j in self._jobs if j.running and j.on_progress is not None]
            now = time.monotonic()
            for job in jobs:
                with job.lock:
                    if job.ended or job.on_progress is None:
                        continue
                    try:
                        job.on_progress(job.decoded_seconds + self._running_share(job, now))
                    except Exception as exc:
                        self._end(job, exc)

    def _running_share(self, job: JobChunks[R], now: float) -> float:
        """Seconds of the job's running chunks its elapsed time suggests are decoded (at most
        90 % of each, at the speed measured so far)."""
        share = 0.0
        for began, seconds, expected in list(job.running.values()):
            share += seconds * min(0.9, (now - began) / max(expected, 1e-3))
        return share
