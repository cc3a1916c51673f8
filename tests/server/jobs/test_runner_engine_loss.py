"""The embedded runner when the engine process is found dead at the moment a job is handed to
it (it died between the runner's check and the hand-over: a crash, the OOM killer).

Before, the runner went on claiming: every claim counted an attempt and every hand-over to the
dead process failed, so within one tick every queued job was failed "after 3 attempts" without
ever reaching an engine. Now the jobs in flight go back to the queue and the runner claims no
more until the next tick has started a fresh engine, on which they succeed.

And a poison file that crashes the engine it shares with healthy jobs: before, once it had
crashed the engine alone the healthy jobs were decoded with it again, each crash costing them
an attempt; now they run alone until they are done.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from whispercli.protocol import Status
from whispercli.server.engine.fake import POISON
from whispercli.server.jobs.runner import LocalRunner
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.blobs import write as write_blob
from whispercli.server.storage.open import Storage, open_storage
from whispercli.server.storage.store import JobRecord, Store

FAKE_SECONDS = 0.2


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _jobs(tmp_path: Path, *uploads: bytes) -> tuple[ServerSettings, Storage, list[str]]:
    """Storage with one queued job per upload, for a fake engine taking up to 4 at once."""
    settings = ServerSettings(
        data_dir=tmp_path / "data",
        api_key_file=tmp_path / "api-key",
        fake_engine_seconds=FAKE_SECONDS,
        engine_jobs=4,
    )
    storage = open_storage(settings)
    store, blobs = storage.store, storage.blobs
    ids = []
    for data in uploads:
        upload_id = store.create_upload("mp3")
        size = asyncio.run(write_blob(blobs, upload_id, _bytes(data), 1024))
        assert store.commit_upload(upload_id, size, lambda: None)
        job, _ = store.create_job("tiny", {}, upload_id, None)
        ids.append(job.id)
    return settings, storage, ids


def _tick_until_ended(
    runner: LocalRunner, store: Store, ids: list[str], ends: set[Status], timeout: float = 60
) -> None:
    """Run the runner's loop a tick at a time until every job's status is one of ``ends``."""
    deadline = time.monotonic() + timeout
    while any(getattr(store.get_job(i), "status", None) not in ends for i in ids):
        assert time.monotonic() < deadline, [store.get_job(i) for i in ids]
        runner._loop._tick()


def test_an_engine_found_dead_at_hand_over_costs_one_attempt_and_no_more(tmp_path: Path) -> None:
    settings, storage, ids = _jobs(tmp_path, b"audio", b"audio", b"audio")
    store, blobs = storage.store, storage.blobs
    notified: list[str] = []
    runner = LocalRunner(settings, store, blobs, notified.append)
    executor = runner._executor
    claim = store.claim_next
    killed: list[int] = []

    def claim_as_the_engine_dies() -> JobRecord | None:
        """The real claim; the first time, the real engine process is SIGKILLed meanwhile."""
        if not killed:
            process = executor.engine._proc
            os.kill(process.pid, signal.SIGKILL)
            process.join(10)
            killed.append(process.pid)
        return claim()

    store.claim_next = claim_as_the_engine_dies  # type: ignore[method-assign]
    try:
        runner._loop._tick()
        jobs = [store.get_job(job_id) for job_id in ids]
        assert [(j.status, j.attempts) for j in jobs if j] == [
            (Status.PENDING, 1),  # handed to the dead engine: back in the queue, one attempt
            (Status.PENDING, 0),  # not claimed
            (Status.PENDING, 0),
        ]
        assert notified == [ids[0]]  # claimed and re-queued: its waiters are told
        _tick_until_ended(runner, store, ids, {Status.SUCCESS})
        assert executor.engine._proc.pid != killed[0]
    finally:
        executor.stopping.set()
        executor.close()
        storage.close()


def test_a_poison_file_decoded_with_others_fails_alone_and_they_succeed(tmp_path: Path) -> None:
    """It crashes the engine it shares with two healthy jobs; those then run one at a time,
    and keep doing so while the poison crashes the engine on its own (attempts 2 and 3), so
    each healthy job loses one attempt at most."""
    settings, storage, ids = _jobs(tmp_path, POISON + b" and burn", b"audio", b"audio")
    store = storage.store
    runner = LocalRunner(settings, store, storage.blobs, lambda job_id: None)
    try:
        _tick_until_ended(runner, store, ids, {Status.SUCCESS, Status.FAILED})
        poison, *healthy = (store.get_job(i) for i in ids)
        assert poison is not None and poison.status == Status.FAILED and poison.attempts == 3
        assert "gave up after 3 attempts" in (poison.error or "")
        assert [(j.status, j.attempts <= 2) for j in healthy if j] == [(Status.SUCCESS, True)] * 2
    finally:
        runner._executor.stopping.set()
        runner._executor.close()
        storage.close()
