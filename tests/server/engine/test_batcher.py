"""The engine's scheduler (engine/batcher.py) with a fake decoder: no model, fast."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from whispercli.server.engine import batcher
from whispercli.server.engine.batcher import JobChunks, Scheduler
from whispercli.server.engine.outcome import JobCancelled
from whispercli.server.engine.speech import Chunk, Span

Item = tuple[JobChunks[str], Chunk]


def chunks(count: int, seconds: float = 1.0) -> list[Chunk]:
    size = int(seconds * 16000)
    return [
        Chunk(i, np.zeros(size, np.float32), (Span(i * size, (i + 1) * size),))
        for i in range(count)
    ]


class Recorder:
    """One job's callbacks, recorded."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.results: list[str] = []
        self.progress: list[float] = []
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.finished_at = 0.0

    def job(self, key: object = "same") -> JobChunks[str]:
        return JobChunks(
            self.job_id,
            key,  # type: ignore[arg-type]
            lambda chunk, result: self.results.append(result),
            self.end,
            self.progress.append,
        )

    def end(self, error: BaseException | None) -> None:
        self.error, self.finished_at = error, time.monotonic()
        self.done.set()


def run(scheduler: Scheduler[str], job: JobChunks[str], items: list[Chunk]) -> threading.Thread:
    scheduler.add(job)

    def feed() -> None:
        with contextlib.suppress(JobCancelled):
            scheduler.feed(job, iter(items))

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


def label(batch: Sequence[Item]) -> list[str]:
    return [f"{job.id}:{chunk.index}" for job, chunk in batch]


@pytest.fixture
def calls() -> list[list[str]]:
    return []


def test_each_job_gets_its_own_results_in_order_though_replicas_finish_out_of_order(
    calls: list[list[str]],
) -> None:
    rng = random.Random(7)

    def decode(batch: Sequence[Item]) -> list[str]:
        calls.append(label(batch))
        time.sleep(rng.uniform(0, 0.02))
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=3, batch_size=2)
    recorders = [Recorder(name) for name in ("a", "b", "c")]
    for rec, count in zip(recorders, (9, 4, 6), strict=True):
        run(scheduler, rec.job(), chunks(count))
    for rec, count in zip(recorders, (9, 4, 6), strict=True):
        assert rec.done.wait(10)
        assert rec.error is None
        assert rec.results == [f"{rec.job_id}:{i}" for i in range(count)]
    assert any(len({item.split(":")[0] for item in call}) > 1 for call in calls), (
        "no batch held chunks of two jobs"
    )
    scheduler.stop()


def test_a_short_job_behind_a_long_one_waits_for_a_batch_not_for_the_file() -> None:
    def decode(batch: Sequence[Item]) -> list[str]:
        time.sleep(0.02)
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=1, batch_size=1)
    long, short = Recorder("long"), Recorder("short")
    run(scheduler, long.job(), chunks(40))
    time.sleep(0.05)
    run(scheduler, short.job(), chunks(2))
    assert short.done.wait(10) and long.done.wait(10)
    assert short.finished_at < long.finished_at
    assert len(long.results) == 40 and len(short.results) == 2
    scheduler.stop()


def test_a_failing_chunk_in_a_shared_batch_fails_only_its_job() -> None:
    seen_together = threading.Event()

    def decode(batch: Sequence[Item]) -> list[str]:
        if len({job.id for job, _ in batch}) > 1:
            seen_together.set()
        if any(job.id == "bad" and chunk.index == 2 for job, chunk in batch):
            raise RuntimeError("the decoder choked on this chunk")
        time.sleep(0.01)  # both jobs have chunks waiting after the first batch
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=1, batch_size=4)
    good, bad = Recorder("good"), Recorder("bad")
    run(scheduler, good.job(), chunks(8))
    run(scheduler, bad.job(), chunks(8))
    assert good.done.wait(10) and bad.done.wait(10)
    assert seen_together.is_set()
    assert good.error is None and good.results == [f"good:{i}" for i in range(8)]
    assert isinstance(bad.error, RuntimeError) and "choked" in str(bad.error)
    assert bad.results == ["bad:0", "bad:1"]  # what came before the bad chunk, in order
    scheduler.stop()


def test_only_jobs_with_the_same_options_share_a_batch(calls: list[list[str]]) -> None:
    def decode(batch: Sequence[Item]) -> list[str]:
        assert len({job.key for job, _ in batch}) == 1
        calls.append(label(batch))
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=1, batch_size=4)
    one, two = Recorder("one"), Recorder("two")
    run(scheduler, one.job("beam5"), chunks(5))
    run(scheduler, two.job("beam2"), chunks(5))
    assert one.done.wait(10) and two.done.wait(10)
    assert one.error is None and two.error is None
    scheduler.stop()


def test_cancel_drops_the_job_at_once_and_the_others_go_on() -> None:
    release = threading.Event()

    def decode(batch: Sequence[Item]) -> list[str]:
        release.wait(5)
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=1, batch_size=1)
    doomed, other = Recorder("doomed"), Recorder("other")
    feeder = run(scheduler, doomed.job(), chunks(30))
    run(scheduler, other.job(), chunks(3))
    time.sleep(0.05)
    started = time.monotonic()
    assert scheduler.cancel("doomed")
    assert doomed.done.wait(1)
    assert time.monotonic() - started < 0.5
    assert isinstance(doomed.error, JobCancelled)
    release.set()
    assert other.done.wait(10) and other.error is None
    assert other.results == ["other:0", "other:1", "other:2"]
    feeder.join(5)
    assert not feeder.is_alive()  # the feeder stopped reading the cancelled job's audio
    assert not scheduler.cancel("doomed")
    scheduler.stop()


def test_the_feeder_stays_a_bounded_number_of_chunks_ahead() -> None:
    gate = threading.Semaphore(0)
    scheduler: Scheduler[str] = Scheduler(
        lambda batch: (gate.acquire(), label(batch))[1], replicas=1, batch_size=1, read_ahead=3
    )
    job = Recorder("big").job()

    scheduler.add(job)
    thread = threading.Thread(target=scheduler.feed, args=(job, iter(chunks(20))), daemon=True)
    thread.start()
    time.sleep(0.2)
    assert job.produced <= 3 + 1  # read_ahead waiting, plus the one being decoded
    for _ in range(20):
        gate.release()
    thread.join(5)
    assert job.produced == 20
    scheduler.stop()


def test_progress_moves_while_a_slow_batch_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batcher, "TICK_SECONDS", 0.05)

    def decode(batch: Sequence[Item]) -> list[str]:
        time.sleep(0.4)
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=1, batch_size=1)
    rec = Recorder("slow")
    run(scheduler, rec.job(), chunks(1, seconds=20.0))
    assert rec.done.wait(10)
    assert len(rec.progress) >= 3
    assert rec.progress == sorted(rec.progress)
    assert 0 < rec.progress[-1] <= 0.9 * 20.0
    scheduler.stop()


def test_a_callback_that_cancels_its_own_job_ends_it_without_a_deadlock() -> None:
    scheduler: Scheduler[str] = Scheduler(label, replicas=1, batch_size=1)
    rec = Recorder("stops")

    def on_result(chunk: Chunk, result: str) -> None:
        rec.results.append(result)
        if chunk.index == 1:
            scheduler.cancel("stops")  # what a consumer that stops early does
            raise RuntimeError("enough")

    job: JobChunks[str] = JobChunks("stops", "same", on_result, rec.end)
    run(scheduler, job, chunks(10))
    assert rec.done.wait(5)
    assert isinstance(rec.error, JobCancelled)
    assert rec.results == ["stops:0", "stops:1"]
    scheduler.stop()


def spoken(count: int, seconds: float, spans: int) -> list[Chunk]:
    """``count`` chunks of ``seconds`` of speech in ``spans`` spans each, the last marked so."""
    size = int(seconds * 16000)
    step = size // spans
    return [
        Chunk(
            i,
            np.zeros(size, np.float32),
            tuple(Span(i * size + k * step, i * size + (k + 1) * step) for k in range(spans)),
            last=i == count - 1,
        )
        for i in range(count)
    ]


@pytest.mark.parametrize(("replicas", "halves"), [(2, True), (1, False)])
def test_the_last_chunk_is_cut_in_halves_when_a_replica_would_wait_idle(
    replicas: int, halves: bool
) -> None:
    decoded: list[tuple[int, float, bool]] = []

    def decode(batch: Sequence[Item]) -> list[str]:
        decoded.extend((chunk.index, chunk.seconds, chunk.half) for _, chunk in batch)
        time.sleep(0.05)
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=replicas, batch_size=1)
    rec = Recorder("job")
    run(scheduler, rec.job(), spoken(3, 20.0, 4))
    assert rec.done.wait(10) and rec.error is None
    if halves:  # three chunks on two replicas: the third one's halves go to both
        assert sorted(decoded) == [(0, 20.0, False), (1, 20.0, False), (2, 10.0, True),
                                   (3, 10.0, True)]  # fmt: skip
        assert rec.results == ["job:0", "job:1", "job:2", "job:3"]  # in order, every half
    else:  # one replica: nothing would wait, nothing is cut
        assert decoded == [(0, 20.0, False), (1, 20.0, False), (2, 20.0, False)]
    scheduler.stop()


def test_a_short_or_single_span_last_chunk_stays_whole() -> None:
    decoded: list[int] = []

    def decode(batch: Sequence[Item]) -> list[str]:
        decoded.extend(chunk.index for _, chunk in batch)
        return label(batch)

    scheduler: Scheduler[str] = Scheduler(decode, replicas=2, batch_size=1)
    short, single = Recorder("short"), Recorder("single")
    run(scheduler, short.job(), spoken(1, batcher.TAIL_SPLIT_SECONDS - 1, 4))
    assert short.done.wait(10)
    run(scheduler, single.job(), spoken(1, 29.0, 1))  # one span: no pause to cut at
    assert single.done.wait(10)
    assert decoded == [0, 0] and short.results == ["short:0"] and single.results == ["single:0"]
    scheduler.stop()
