"""What the PostgreSQL store adds to the contract: races between servers, migration, outages."""

from __future__ import annotations

import logging
import threading

import pytest
from support.pg_cluster import PostgresCluster

from whispercli.server.scale.queue import migrate
from whispercli.server.storage.postgres.pool import FailedAttempts, steady_reconnects
from whispercli.server.storage.postgres.store import PostgresStore
from whispercli.server.storage.store import StoreUnavailable


def test_migrate_twice_and_from_racing_processes(postgres: PostgresCluster) -> None:
    dsn = postgres.new_database()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            migrate(dsn)
        except BaseException as exc:  # collected for the assert below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    migrate(dsn)
    assert errors == []


def test_a_migrated_database_is_not_locked_by_a_process_starting(
    postgres: PostgresCluster,
) -> None:
    """Every server and worker migrates at start; on a database already migrated that must
    take no lock on the tables in use (DDL such as re-creating a trigger waits for every open
    transaction on the jobs table, and queues everyone else behind it: a worker starting
    while another held a row lock stalled the fleet)."""
    import psycopg

    dsn = postgres.new_database(migrate)
    with psycopg.connect(dsn) as busy:  # a transaction in flight on the jobs table
        busy.execute("SELECT id FROM whispercli_jobs FOR UPDATE")
        done = threading.Event()
        starting = threading.Thread(target=lambda: (migrate(dsn), done.set()), daemon=True)
        starting.start()
        migrated = done.wait(10)
        busy.rollback()
        starting.join(30)
    assert migrated, "migrate waited on a transaction of another process"


def test_two_servers_racing_on_one_key_create_one_job(postgres: PostgresCluster) -> None:
    dsn = postgres.new_database(migrate)
    servers = [PostgresStore(dsn), PostgresStore(dsn)]
    try:
        upload_id = servers[0].create_upload("mp3")
        servers[0].commit_upload(upload_id, 1, lambda: None)
        results: list[tuple[str, bool]] = []
        barrier = threading.Barrier(8)

        def submit(store: PostgresStore) -> None:
            barrier.wait()
            job, created = store.create_job("tiny", {}, upload_id, "the-key")
            results.append((job.id, created))

        threads = [threading.Thread(target=submit, args=(servers[i % 2],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len({job_id for job_id, _ in results}) == 1
        assert sum(created for _, created in results) == 1
        assert len(servers[1].list_jobs(None, 10)) == 1
    finally:
        for store in servers:
            store.close()


def test_a_database_outage_is_store_unavailable_without_the_password(
    postgres_outage: PostgresCluster,
) -> None:
    cluster = postgres_outage  # this test stops PostgreSQL
    dsn = cluster.new_database(migrate).replace("postgres@", "postgres:s3cret-pw@")
    store = PostgresStore(dsn)
    try:
        upload_id = store.create_upload(None)
        cluster.stop()
        with pytest.raises(StoreUnavailable) as caught:
            store.get_upload(upload_id)
        assert "s3cret-pw" not in str(caught.value)
        cluster.start()
        upload = store.get_upload(upload_id)  # the pool reconnects by itself
        assert upload is not None and upload.id == upload_id
    finally:
        store.close()


def _attempt_failed(pool: str) -> logging.LogRecord:
    """psycopg_pool's own warning for a failed connection attempt (psycopg_pool/pool.py)."""
    return logging.LogRecord(
        "psycopg.pool", logging.WARNING, __file__, 0, "error connecting in %r: %s",
        (pool, "connection refused"), None,
    )  # fmt: skip


def test_a_pool_looking_for_a_lost_database_logs_a_line_every_30_s_with_the_count() -> None:
    """Pools retry every second during an outage (steady_reconnects); their warnings are one
    line per pool per 30 s, each saying how many failed attempts it stands for."""
    now = [0.0]
    gate = FailedAttempts(30.0, clock=lambda: now[0])
    shown: list[str] = []
    for second in range(61):
        now[0] = float(second)
        for pool in ("pool-1", "pool-2"):
            record = _attempt_failed(pool)
            if gate.filter(record):
                shown.append(record.getMessage())
    assert len(shown) == 6  # at 0, 30 and 60 s, for each pool
    assert shown[0] == "error connecting in 'pool-1': connection refused"
    assert shown[2:4] == [
        f"error connecting in '{pool}': connection refused"
        " (29 more failed attempts since the last line)"
        for pool in ("pool-1", "pool-2")
    ]
    other = logging.LogRecord("psycopg.pool", logging.INFO, __file__, 0, "pool ready", (), None)
    assert gate.filter(other)  # the pool's other lines pass
    steady_reconnects()
    steady_reconnects()
    gates = [f for f in logging.getLogger("psycopg.pool").filters if isinstance(f, FailedAttempts)]
    assert len(gates) == 1
