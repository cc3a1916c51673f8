"""The contract every Store and BlobStore implementation passes.

Implementations are fixtures named in STORES / BLOB_STORES: a new backend adds its fixture
(here or in a conftest) and its name to the list, nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from support.pg_cluster import PostgresCluster

from whispercli.protocol import Status
from whispercli.server.storage.blobs import BlobStore, BlobTooLarge
from whispercli.server.storage.blobs import write as write_blob
from whispercli.server.storage.deliveries import LEASE_SECONDS
from whispercli.server.storage.disk_blobs import DiskBlobStore
from whispercli.server.storage.sqlite import SqliteStore
from whispercli.server.storage.store import Store, Swept

STORES = ["sqlite_store", "postgres_store"]
BLOB_STORES = ["disk_blobs", "postgres_blobs"]
MAX_ATTEMPTS = 3


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = SqliteStore(tmp_path / "data")
    yield store
    store.close()


@pytest.fixture
def postgres_store(postgres: PostgresCluster) -> Iterator[Store]:
    from whispercli.server.scale.queue import migrate
    from whispercli.server.storage.postgres.store import PostgresStore

    store = PostgresStore(postgres.new_database(migrate))
    yield store
    store.close()


@pytest.fixture
def disk_blobs(tmp_path: Path) -> BlobStore:
    return DiskBlobStore(tmp_path / "blobs")


@pytest.fixture
def postgres_blobs(postgres: PostgresCluster, tmp_path: Path) -> Iterator[BlobStore]:
    from whispercli.server.scale.queue import migrate
    from whispercli.server.storage.postgres.blobs import PostgresBlobStore

    blobs = PostgresBlobStore(postgres.new_database(migrate), scratch_dir=tmp_path)
    yield blobs
    blobs.close()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> Store:
    implementation: Store = request.getfixturevalue(request.param)
    return implementation


@pytest.fixture(params=BLOB_STORES)
def blobs(request: pytest.FixtureRequest) -> BlobStore:
    implementation: BlobStore = request.getfixturevalue(request.param)
    return implementation


def uploaded(store: Store, size: int = 10) -> str:
    upload_id = store.create_upload("mp3")
    assert store.commit_upload(upload_id, size, lambda: None)
    return upload_id


def new_job(store: Store, key: str | None = None, upload_id: str | None = None) -> str:
    job, created = store.create_job("tiny", {"language": "en"}, upload_id or uploaded(store), key)
    assert created
    return job.id


def in_threads(target: Callable[[], None], count: int) -> None:
    """Run ``target`` in ``count`` threads at once and wait for them all."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)


# -- uploads --------------------------------------------------------------------------------------
def test_upload_metadata(store: Store) -> None:
    upload_id = store.create_upload("mp3")
    upload = store.get_upload(upload_id)
    assert upload is not None
    assert (upload.extension, upload.size, upload.used) == ("mp3", None, False)
    assert abs(upload.created_at - time.time()) < 60
    assert store.commit_upload(upload_id, 1234, lambda: None)
    upload = store.get_upload(upload_id)
    assert upload is not None and upload.size == 1234
    assert store.get_upload("0" * 32) is None
    store.create_job("tiny", {}, upload_id, None)
    upload = store.get_upload(upload_id)
    assert upload is not None and upload.used


def test_an_upload_commit_publishes_only_while_no_job_uses_it(store: Store) -> None:
    """The "used" check and the commit of an upload's bytes are one step (issue 20, item 13)."""
    published: list[int] = []
    upload_id = store.create_upload(None)
    assert store.commit_upload(upload_id, 5, lambda: published.append(5))
    store.create_job("tiny", {}, upload_id, None)
    assert not store.commit_upload(upload_id, 7, lambda: published.append(7))
    upload = store.get_upload(upload_id)
    assert published == [5] and upload is not None and upload.size == 5
    assert not store.commit_upload("0" * 32, 1, lambda: published.append(1))
    assert published == [5]


def test_a_job_on_an_upload_waits_for_its_commit_in_flight(store: Store) -> None:
    upload_id = store.create_upload(None)
    publishing, release = threading.Event(), threading.Event()
    order: list[str] = []

    def publish() -> None:
        publishing.set()
        release.wait(10)
        order.append("published")

    committed: list[bool] = []
    commit = threading.Thread(
        target=lambda: committed.append(store.commit_upload(upload_id, 9, publish))
    )
    commit.start()
    assert publishing.wait(10)
    submit = threading.Thread(
        target=lambda: order.append(store.create_job("tiny", {}, upload_id, None)[0].status)
    )
    submit.start()
    submit.join(0.5)
    assert submit.is_alive(), "create_job went ahead while the upload's bytes were replaced"
    release.set()
    commit.join(10)
    submit.join(10)
    assert committed == [True] and order == ["published", Status.PENDING.value]


# -- jobs -----------------------------------------------------------------------------------------
def test_create_get_list_count(store: Store) -> None:
    upload_id = uploaded(store)
    job, created = store.create_job("tiny", {"beam_size": 2}, upload_id, None)
    assert created
    assert (job.status, job.model, job.params, job.upload_id) == (
        "pending",
        "tiny",
        {"beam_size": 2},
        upload_id,
    )
    assert (job.attempts, job.progress, job.segments, job.has_result) == (0, 0, [], False)
    assert job.error is None and not job.cancel_requested
    assert job.started_at is None and job.completed_at is None
    assert store.get_job(job.id) == job
    assert store.get_job("f" * 32) is None
    second = new_job(store)
    assert [j.id for j in store.list_jobs(None, 10)] == [second, job.id]
    assert [j.id for j in store.list_jobs(None, 1)] == [second]
    assert store.list_jobs("success", 10) == []
    assert store.counts().get("pending") == 2


def test_idempotency_key_gives_one_job(store: Store) -> None:
    first = new_job(store, key="k1")
    again, created = store.create_job("tiny", {}, uploaded(store), "k1")
    assert not created and again.id == first
    found = store.job_by_key("k1")
    assert found is not None and found.id == first
    assert store.job_by_key("other") is None
    assert len(store.list_jobs(None, 10)) == 1


def test_claim_takes_the_oldest_and_counts_the_attempt(store: Store) -> None:
    assert store.claim_next() is None
    first, second = new_job(store), new_job(store)
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == first
    assert (claimed.status, claimed.attempts) == ("processing", 1)
    assert claimed.started_at is not None
    other = store.claim_next()
    assert other is not None and other.id == second
    assert store.claim_next() is None


def test_concurrent_claims_take_each_job_once(store: Store) -> None:
    ids = {new_job(store) for _ in range(12)}
    taken: list[str] = []
    lock = threading.Lock()

    def claim_all() -> None:
        while (job := store.claim_next()) is not None:
            with lock:
                taken.append(job.id)

    in_threads(claim_all, 4)
    assert sorted(taken) == sorted(ids)


def test_claim_of_a_given_job(store: Store) -> None:
    """What a queue-fed worker does with the job id it was handed."""
    job_id = new_job(store)
    first = store.claim(job_id, MAX_ATTEMPTS)
    assert first is not None and (first.status, first.attempts) == ("processing", 1)
    # its worker died: the queue hands the job to another worker, which takes it over
    second = store.claim(job_id, MAX_ATTEMPTS)
    assert second is not None and second.attempts == 2
    assert not store.set_progress(job_id, 1, 0.5, [])  # the first worker is fenced out
    # the first worker's other writes are fenced out too
    assert store.requeue_or_fail(job_id, 1, "crashed", MAX_ATTEMPTS) == "gone"
    store.release(job_id, 1)
    assert not store.finish(job_id, 1, Status.FAILED, error="zombie")
    job = store.get_job(job_id)
    assert job is not None and (job.status, job.attempts, job.error) == ("processing", 2, None)
    assert store.claim(job_id, MAX_ATTEMPTS) is not None  # attempt 3
    assert store.claim(job_id, MAX_ATTEMPTS) is None  # out of attempts: failed
    job = store.get_job(job_id)
    assert job is not None and job.status == "failed" and job.completed_at is not None
    assert job.error is not None and "gave up after 3 attempts" in job.error
    assert store.claim(job_id, MAX_ATTEMPTS) is None  # finished: nothing to run

    cancelled = new_job(store)
    assert store.cancel(cancelled) is not None
    assert store.claim(cancelled, MAX_ATTEMPTS) is None  # a cancelled job never runs
    flagged = new_job(store)
    assert store.claim(flagged, MAX_ATTEMPTS) is not None
    assert store.cancel(flagged) is not None  # processing: flagged
    assert store.claim(flagged, MAX_ATTEMPTS) is None  # a retry of a cancelled job: no
    job = store.get_job(flagged)
    assert job is not None and job.status == "cancelled"
    assert store.claim("0" * 32, MAX_ATTEMPTS) is None


def test_racing_take_overs_give_each_attempt_once(store: Store) -> None:
    """A queue may hand one job to several workers at once (a retry of a task whose worker
    only looked dead): each claim counts its own attempt, and no more than ``max_attempts``."""
    job_id = new_job(store)
    got: list[int] = []
    lock = threading.Lock()

    def claim() -> None:
        claimed = store.claim(job_id, MAX_ATTEMPTS)
        with lock:
            got.append(claimed.attempts if claimed is not None else 0)

    in_threads(claim, 2 * MAX_ATTEMPTS)
    assert sorted(got) == [0] * MAX_ATTEMPTS + list(range(1, MAX_ATTEMPTS + 1))
    job = store.get_job(job_id)
    assert job is not None and (job.status, job.attempts) == ("failed", MAX_ATTEMPTS)


def test_progress_and_finish_are_fenced_by_attempt(store: Store) -> None:
    job_id = new_job(store)
    claimed = store.claim_next()
    assert claimed is not None and claimed.attempts == 1
    segment = {"id": 0, "start": 0.0, "end": 1.0, "text": " hi"}
    assert store.set_progress(job_id, 1, 0.5, [segment])
    assert not store.set_progress(job_id, 2, 0.9, [])  # a later attempt's number: not running
    job = store.get_job(job_id)
    assert job is not None and (job.progress, job.segments) == (0.5, [segment])

    assert store.requeue_or_fail(job_id, 1, "crashed", MAX_ATTEMPTS) == "pending"
    again = store.claim_next()
    assert again is not None and again.attempts == 2
    # the first attempt wakes up late (a zombie): its writes change nothing
    assert not store.set_progress(job_id, 1, 0.99, [segment])
    assert not store.finish(job_id, 1, Status.SUCCESS, result={"text": "zombie", "segments": []})
    job = store.get_job(job_id)
    assert job is not None and job.status == "processing" and not job.has_result
    assert store.read_result(job_id) is None

    result = {"text": " hi", "segments": [segment], "language": "en"}
    assert store.finish(job_id, 2, Status.SUCCESS, result=result)
    assert not store.finish(job_id, 2, Status.FAILED, error="twice")
    job = store.get_job(job_id)
    assert job is not None
    assert (job.status, job.progress, job.has_result, job.error) == ("success", 1, True, None)
    assert job.segments == [] and job.completed_at is not None
    assert store.read_result(job_id) == result


def test_failure_keeps_the_error(store: Store) -> None:
    job_id = new_job(store)
    assert store.claim_next() is not None
    assert store.finish(job_id, 1, Status.FAILED, error="not audio")
    job = store.get_job(job_id)
    assert job is not None and (job.status, job.error, job.has_result) == (
        "failed",
        "not audio",
        False,
    )


def test_attempts_are_bounded(store: Store) -> None:
    job_id = new_job(store)
    statuses = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        claimed = store.claim_next()
        assert claimed is not None and claimed.attempts == attempt
        statuses.append(store.requeue_or_fail(job_id, attempt, "the worker crashed", MAX_ATTEMPTS))
    assert statuses == ["pending", "pending", "failed"]
    job = store.get_job(job_id)
    assert job is not None and job.status == "failed" and job.completed_at is not None
    assert job.error == "the worker crashed; gave up after 3 attempts"
    assert store.requeue_or_fail(job_id, MAX_ATTEMPTS, "again", MAX_ATTEMPTS) == "gone"


def test_release_does_not_count_the_attempt(store: Store) -> None:
    job_id = new_job(store)
    assert store.claim_next() is not None
    store.release(job_id, 2)  # not the attempt that runs: nothing changes
    job = store.get_job(job_id)
    assert job is not None and (job.status, job.attempts) == ("processing", 1)
    store.release(job_id, 1)
    job = store.get_job(job_id)
    assert job is not None and (job.status, job.attempts) == ("pending", 0)


def test_recover_requeues_processing_jobs(store: Store) -> None:
    job_id = new_job(store)
    assert store.claim_next() is not None
    assert store.recover(MAX_ATTEMPTS) == ["pending"]
    job = store.get_job(job_id)
    assert job is not None and job.status == "pending" and job.attempts == 1
    assert store.recover(MAX_ATTEMPTS) == []


def test_cancel(store: Store) -> None:
    queued, running = new_job(store), new_job(store)
    assert store.claim_next() is not None  # ``queued`` (the oldest) is now processing
    flagged = store.cancel(queued)
    assert flagged is not None and flagged.status == "processing" and flagged.cancel_requested
    cancelled = store.cancel(running)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert cancelled.completed_at is not None
    assert store.claim_next() is None  # a cancelled job never runs
    assert store.requeue_or_fail(queued, 1, "crashed", MAX_ATTEMPTS) == "cancelled"
    assert store.cancel("0" * 32) is None
    finished = store.get_job(running)
    assert store.cancel(running) == finished  # an ended job stays as it ended
    assert not store.finish(queued, 1, Status.SUCCESS)  # its worker, late: cancelled stays


def test_delete_returns_the_uploads_no_job_uses(store: Store) -> None:
    shared = uploaded(store)
    first, second = new_job(store, upload_id=shared), new_job(store, upload_id=shared)
    assert store.claim_next() is not None
    assert store.finish(first, 1, Status.SUCCESS, result={"text": "", "segments": []})
    assert store.delete_job(first) == []
    assert store.get_job(first) is None and store.read_result(first) is None
    assert store.get_upload(shared) is not None
    assert store.delete_job(second) == [shared]
    assert store.get_upload(shared) is None
    assert store.delete_job(second) is None


def test_sweep_removes_what_is_old_and_finished(store: Store) -> None:
    done, active = new_job(store), new_job(store)
    orphan = uploaded(store)
    assert store.claim_next() is not None
    assert store.finish(done, 1, Status.SUCCESS, result={"text": "", "segments": []})
    done_job, active_job = store.get_job(done), store.get_job(active)
    assert done_job is not None and active_job is not None
    assert store.sweep(3600) == Swept(0, [])  # nothing is that old yet
    time.sleep(0.05)
    swept = store.sweep(0.01)
    assert swept.jobs == 1
    assert sorted(swept.uploads) == sorted([orphan, done_job.upload_id])
    assert store.get_job(done) is None and store.read_result(done) is None
    assert store.get_upload(orphan) is None and store.get_upload(done_job.upload_id) is None
    assert store.get_job(active) is not None
    assert store.get_upload(active_job.upload_id) is not None


# -- a protocol's metadata and webhook deliveries -----------------------------------------------
def test_meta_is_kept_replaced_and_deleted_with_the_job(store: Store) -> None:
    job_id = new_job(store)
    assert store.get_meta(job_id) is None
    store.set_meta(job_id, {"providers": ["whisper"]})
    store.set_meta(job_id, {"providers": ["whisper/tiny"], "show_original_response": True})
    assert store.get_meta(job_id) == {"providers": ["whisper/tiny"], "show_original_response": True}
    store.delete_job(job_id)
    assert store.get_meta(job_id) is None


def test_a_delivery_is_due_once_its_job_ended(store: Store) -> None:
    job_id = new_job(store)
    store.add_delivery(job_id, "msg_1", "http://127.0.0.1:9/h", "tiyaro", "http://b", {"k": 1})
    store.add_delivery(job_id, "msg_2", "http://127.0.0.1:9/other", "edenai", "x", {})  # ignored
    now = time.time()
    assert store.due_deliveries(now, 10) == []  # the job has not ended
    assert store.claim_next() is not None
    assert store.finish(job_id, 1, Status.SUCCESS, result={"text": "", "segments": []})
    [due] = store.due_deliveries(time.time(), 10)
    assert store.due_deliveries(time.time(), 10) == []  # leased to the one who claimed it
    job = store.get_job(job_id)
    assert job is not None
    assert (due.job_id, due.message_id, due.url, due.kind, due.base_url, due.extra) == (
        job_id,
        "msg_1",
        "http://127.0.0.1:9/h",
        "tiyaro",
        "http://b",
        {"k": 1},
    )
    assert (due.attempts, due.body, due.ended_at) == (0, None, job.completed_at)

    store.record_attempt(job_id, b'{"a": 1}', delivered=False, next_at=now + 60, error="HTTP 500")
    assert store.due_deliveries(now + 59, 10) == []
    [again] = store.due_deliveries(now + 60, 10)
    assert (again.attempts, again.body) == (1, b'{"a": 1}')
    store.record_attempt(job_id, b"other", delivered=False, next_at=now + 61, error="HTTP 500")
    [kept] = store.due_deliveries(now + 61, 10)
    assert kept.body == b'{"a": 1}'  # the body of the first attempt is sent on every retry
    store.record_attempt(job_id, b"", delivered=True, next_at=None, error=None)
    assert store.due_deliveries(now + 10**6, 10) == []


def test_a_leased_delivery_is_due_again_when_its_lease_ends(store: Store) -> None:
    """A deliverer that claimed a delivery and died before recording the attempt: another
    sends it once the lease is over."""
    job_id = new_job(store)
    store.add_delivery(job_id, "msg_1", "http://127.0.0.1:9/h", "tiyaro", "http://b", {})
    assert store.cancel(job_id) is not None
    now = time.time()
    assert [d.job_id for d in store.due_deliveries(now, 10)] == [job_id]
    assert store.due_deliveries(now + LEASE_SECONDS - 1, 10) == []
    [again] = store.due_deliveries(now + LEASE_SECONDS, 10)
    assert (again.job_id, again.attempts) == (job_id, 0)


def test_a_delivery_given_up_or_of_a_deleted_job_is_never_due(store: Store) -> None:
    given_up, deleted = new_job(store), new_job(store)
    for job_id in (given_up, deleted):
        store.add_delivery(job_id, f"msg_{job_id}", "http://127.0.0.1:9/", "tiyaro", "", {})
        assert store.cancel(job_id) is not None  # cancelled while queued: ended
    assert {d.job_id for d in store.due_deliveries(time.time(), 10)} == {given_up, deleted}
    store.record_attempt(given_up, b"{}", delivered=False, next_at=None, error="HTTP 500")
    store.delete_job(deleted)
    assert store.due_deliveries(time.time() + 10**6, 10) == []


def test_racing_deliverers_claim_each_delivery_once(store: Store) -> None:
    ids = [new_job(store) for _ in range(12)]
    for job_id in ids:
        store.add_delivery(job_id, f"msg_{job_id}", "http://127.0.0.1:9/", "tiyaro", "", {})
        assert store.cancel(job_id) is not None
    taken: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        for _ in range(6):
            got = store.due_deliveries(time.time(), 2)
            with lock:
                taken.extend(d.job_id for d in got)

    in_threads(claim, 4)
    assert sorted(taken) == sorted(ids)


# -- blobs ----------------------------------------------------------------------------------------
async def _chunks(
    data: bytes, size: int = 65536, fail_at: int | None = None
) -> AsyncIterator[bytes]:
    for offset in range(0, len(data), size):
        if fail_at is not None and offset >= fail_at:
            raise ConnectionError("client went away")
        yield data[offset : offset + size]


def test_blob_round_trip(blobs: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    assert asyncio.run(write_blob(blobs, "b" * 32, _chunks(data), len(data))) == len(data)
    read = hashlib.sha256()
    for chunk in blobs.read("b" * 32):
        read.update(chunk)
    assert read.hexdigest() == hashlib.sha256(data).hexdigest()
    with blobs.local_file("b" * 32) as path:
        assert path.read_bytes() == data
    blobs.delete("b" * 32)
    blobs.delete("b" * 32)  # twice: no error
    with pytest.raises(FileNotFoundError):
        list(blobs.read("b" * 32))
    with pytest.raises(FileNotFoundError), blobs.local_file("b" * 32):
        pass


def test_blob_over_the_limit_keeps_nothing_new(blobs: BlobStore) -> None:
    old = b"old bytes"
    asyncio.run(write_blob(blobs, "c" * 32, _chunks(old), 100))
    with pytest.raises(BlobTooLarge):
        asyncio.run(write_blob(blobs, "c" * 32, _chunks(os.urandom(300_000)), 200_000))
    with pytest.raises(ConnectionError):
        asyncio.run(
            write_blob(blobs, "c" * 32, _chunks(os.urandom(300_000), fail_at=100_000), 10**6)
        )
    assert b"".join(blobs.read("c" * 32)) == old
    with pytest.raises(BlobTooLarge):
        asyncio.run(write_blob(blobs, "d" * 32, _chunks(b"x" * 10), 9))
    with pytest.raises(FileNotFoundError):
        list(blobs.read("d" * 32))


def test_blob_replaced_by_a_second_write(blobs: BlobStore) -> None:
    asyncio.run(write_blob(blobs, "e" * 32, _chunks(b"first"), 100))
    asyncio.run(write_blob(blobs, "e" * 32, _chunks(b"second"), 100))
    assert b"".join(blobs.read("e" * 32)) == b"second"


def test_staged_bytes_change_nothing_until_published(blobs: BlobStore) -> None:
    asyncio.run(write_blob(blobs, "a" * 32, _chunks(b"old"), 100))
    staged = asyncio.run(blobs.stage("a" * 32, _chunks(b"new bytes"), 100))
    assert staged.size == 9 and b"".join(blobs.read("a" * 32)) == b"old"
    staged.discard()
    assert b"".join(blobs.read("a" * 32)) == b"old"
    staged = asyncio.run(blobs.stage("a" * 32, _chunks(b"new bytes"), 100))
    staged.publish()
    staged.discard()  # after publish: nothing to drop
    assert b"".join(blobs.read("a" * 32)) == b"new bytes"


def test_a_50_mb_blob_round_trips_with_flat_memory(blobs: BlobStore) -> None:
    block = os.urandom(1024 * 1024)
    total = 50 * len(block)

    async def stream() -> AsyncIterator[bytes]:
        for i in range(50):
            yield block[i:] + block[:i]  # 50 different MiB, one at a time

    expected = hashlib.sha256()
    for i in range(50):
        expected.update(block[i:] + block[:i])
    tracemalloc.start()
    try:
        assert asyncio.run(write_blob(blobs, "f" * 32, stream(), total + 1)) == total
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read = hashlib.sha256()
        with blobs.local_file("f" * 32) as path, path.open("rb") as fh:
            while chunk := fh.read(1024 * 1024):
                read.update(chunk)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read.hexdigest() == expected.hexdigest()
    # A few chunks in flight at most: far below the 50 MiB that holding the file would take.
    assert write_peak < 20 * 2**20, f"write held {write_peak / 2**20:.0f} MiB"
    assert read_peak < 20 * 2**20, f"read held {read_peak / 2**20:.0f} MiB"
