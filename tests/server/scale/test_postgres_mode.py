"""`server migrate` and `server run --database`: the API server on PostgreSQL, with no engine
of its own (jobs wait for workers), long-polls woken by writes from elsewhere, and a 503 with
Retry-After while the database is down."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import requests
from support.pg_cluster import PostgresCluster
from support.procs import cmdline, until
from support.protocol import TIMEOUT, poll, submit, upload
from support.samples import REPO
from support.servers import ServerFactory

from whispercli.server.scale.fleet import Fleet, Heartbeat
from whispercli.server.scale.queue import TASK, migrate
from whispercli.server.storage.postgres.pool import open_pool
from whispercli.server.storage.postgres.store import PostgresStore


def _migrate_cli(dsn: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "whispercli", "server", "migrate", "--database", dsn],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_migrate_is_idempotent(postgres: PostgresCluster) -> None:
    dsn = postgres.new_database()
    for _ in range(2):
        done = _migrate_cli(dsn)
        assert done.returncode == 0, done.stderr
        assert "schema up to date" in done.stderr
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM whispercli_jobs").fetchone()
    assert row == (0,)


def test_migrate_against_no_database_is_a_clean_error(tmp_path: Path) -> None:
    done = _migrate_cli("postgresql://nobody:hunter2@127.0.0.1:1/nothing")
    assert done.returncode == 6  # ExitCode.UNREACHABLE
    assert "database is unavailable" in done.stderr
    assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_api_server_on_postgres(postgres: PostgresCluster, server_factory: ServerFactory) -> None:
    dsn = postgres.new_database(migrate)
    server = server_factory.start("--database", dsn)
    job = submit(server, upload(server))
    assert job["status"] == "pending"
    assert not list((server.data_dir / "uploads").glob("*"))  # the bytes are in the database
    with psycopg.connect(dsn) as conn:
        manifest = conn.execute("SELECT size FROM whispercli_blobs").fetchall()
    assert manifest == [((REPO / "samples" / "sample.mp3").stat().st_size,)]
    time.sleep(1.0)
    assert poll(server, job)["status"] == "pending"  # no engine here: it waits for a worker

    elsewhere = PostgresStore(dsn)  # a worker on another machine
    try:
        changed_at: list[float] = []

        def cancel_later() -> None:
            time.sleep(0.5)
            changed_at.append(time.monotonic())
            elsewhere.cancel(job["id"])

        thread = threading.Thread(target=cancel_later)
        thread.start()
        body = poll(server, job, wait=10)
        answered = time.monotonic()
        thread.join()
    finally:
        elsewhere.close()
    assert body["status"] == "cancelled"
    assert answered - changed_at[0] < 0.5, f"the long-poll took {answered - changed_at[0]:.2f} s"
    assert "spawn_main" not in " ".join(cmdline(pid) for pid in server.children())


def test_database_down_is_503_with_retry_after(
    server_factory: ServerFactory, postgres_outage: PostgresCluster
) -> None:
    cluster = postgres_outage  # this test stops PostgreSQL
    dsn = cluster.new_database().replace("postgres@", "postgres:pg-secret-pw@")
    server = server_factory.start("--database", dsn)
    cluster.stop("fast")
    resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 503
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.json()["error"]["code"] == "unavailable"
    cluster.start()

    def healthy() -> bool:
        resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=TIMEOUT)
        return resp.status_code == 200

    until(healthy, timeout=20, interval=0.2)
    server.stop()
    log = server.log()
    assert "pg-secret-pw" not in log and "Traceback" not in log
    assert "postgres:***@" in log


def test_a_worker_yields_a_task_only_to_a_live_less_busy_peer_of_its_queues(
    postgres: PostgresCluster,
) -> None:
    """The rows ``_fetch_rules`` reads: a peer counts if it is live, serves one of the
    queues, runs fewer jobs and has room; a worker alone (no such peer) never waits."""
    pool = open_pool(postgres.new_database(migrate), 2)
    try:
        fleet = Fleet(pool, stalled_after=5, task=TASK)

        def worker(name: str, queues: list[str], jobs: list[str], capacity: int = 8) -> None:
            beat = Heartbeat(fleet, name, queues, "cpu", [], 1, capacity)
            beat.current_jobs = jobs
            fleet.beat(beat)  # its row, as its heartbeat thread writes it

        worker("me", ["cpu"], ["a", "b"])
        assert not fleet.less_busy_peer("me", ["cpu"], 2)  # alone: take at once
        worker("gpu-box", ["gpu"], [])
        assert not fleet.less_busy_peer("me", ["cpu"], 2)  # idle, but not on this queue
        worker("full", ["cpu"], ["c"], capacity=1)
        assert not fleet.less_busy_peer("me", ["cpu"], 2)  # fewer jobs, but no room
        worker("busier", ["cpu", "gpu"], ["d", "e"])
        assert not fleet.less_busy_peer("me", ["cpu"], 2)  # as busy
        worker("idle", ["cpu", "gpu"], [])
        assert fleet.less_busy_peer("me", ["cpu"], 2)
        assert not fleet.less_busy_peer("me", ["cpu"], 0)  # nobody runs fewer than none
        with pool.connection() as conn:
            conn.execute("UPDATE whispercli_workers SET heartbeat = 0 WHERE id = 'idle'")
        assert not fleet.less_busy_peer("me", ["cpu"], 2)  # dead
    finally:
        pool.close()
