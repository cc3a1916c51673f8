"""The PostgreSQL mode end to end: `server run --database` (no engine) and `worker run`
processes (the real model) that take jobs from the queue."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from local_server import SAMPLE_TXT, ServerFactory, ServerHandle
from pg_cluster import PostgresCluster, Workers
from server_helpers import SUBMIT, poll, submit, upload, wait_done

from whispercli.server.scale.queue import POLL_SECONDS, STALLED_AFTER_SECONDS


def test_a_job_runs_on_a_worker(server_factory: ServerFactory, workers: Workers) -> None:
    server = server_factory.start("--database", workers.dsn)
    job = submit(server, upload(server))
    time.sleep(0.5)
    assert poll(server, job)["status"] == "pending"  # no worker yet
    workers.start()
    body = wait_done(server, job, timeout=90)
    assert body["status"] == "success", (body, workers.logs())
    expected = SAMPLE_TXT.read_text().split()[:4]
    assert [w.strip(",.") for w in body["result"]["text"].split()[:4]] == [
        w.strip(",.") for w in expected
    ]
    second = submit(server, upload(server))
    assert wait_done(server, second, timeout=60)["status"] == "success"
    assert "attempt 1" in workers.logs()
    assert workers.stop_all() == [0]
    assert "Traceback" not in workers.logs() and "leaked semaphore" not in workers.logs()


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from server_helpers import make_long_clip

    return make_long_clip(tmp_path_factory.mktemp("audio"), 3)


def _processing(server: object, job: dict[str, object]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = poll(server, job)  # type: ignore[arg-type]
        if body["status"] == "processing" and body.get("progress", 0) > 0:
            return
        time.sleep(0.1)
    raise AssertionError("the job never made progress")


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def _gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_sigkilled_worker_job_finishes_on_the_other(
    server_factory: ServerFactory, workers: Workers, long_clip: Path
) -> None:
    import psycopg

    server = server_factory.start("--database", workers.dsn)
    workers.start(), workers.start()
    job = submit(server, upload(server, long_clip), {"speed": "accurate"})
    _processing(server, job)
    running = next(
        proc for proc, log in workers.procs if job["id"] in log.read_text(errors="replace")
    )
    engine_children = _children(running.pid)
    killed_at = time.monotonic()
    running.kill()
    running.wait(10)
    assert all(_gone(pid, 3) for pid in engine_children), "the engine outlived its worker"
    other_log = next(log for proc, log in workers.procs if proc is not running)
    retaken = f"job {job['id']}: attempt 2"
    while retaken not in other_log.read_text(errors="replace"):
        assert time.monotonic() - killed_at < 30, "no other worker took the job over"
        time.sleep(0.1)
    repick = time.monotonic() - killed_at
    # a dead worker is noticed after its heartbeat is STALLED_AFTER_SECONDS old, by the
    # reaper (every second), and its task picked up within POLL_SECONDS: 5 + 1 + 1, + 5 slack
    assert repick < STALLED_AFTER_SECONDS + 1 + POLL_SECONDS + 5, f"re-picked after {repick:.1f} s"
    body = wait_done(server, job, timeout=120)
    assert body["status"] == "success", (body, workers.logs())
    assert body["result"]["duration"] > 150
    took = time.monotonic() - killed_at
    with psycopg.connect(workers.dsn) as conn:
        row = conn.execute("SELECT attempts FROM whispercli_jobs WHERE id = %s", (job["id"],))
        assert row.fetchone() == (2,)
    assert took < 60, f"finished {took:.1f} s after the kill"
    print(f"re-picked {repick:.1f} s and finished {took:.1f} s after the SIGKILL")


@pytest.mark.slow
def test_cancel_of_a_job_on_a_worker(
    server_factory: ServerFactory, workers: Workers, long_clip: Path
) -> None:
    import requests

    server = server_factory.start("--database", workers.dsn)
    workers.start()
    running = submit(server, upload(server, long_clip), {"speed": "accurate"})
    queued = submit(server, upload(server, long_clip), {"speed": "accurate"})
    _processing(server, running)
    for job in (queued, running):
        started = time.monotonic()
        resp = requests.post(
            f"{server.url}/v1/async/jobs/{job['id']}/cancel", headers=server.headers, timeout=10
        )
        assert resp.status_code == 200
        assert wait_done(server, job, timeout=10)["status"] == "cancelled"
        assert time.monotonic() - started < 1.5
    assert wait_done(server, submit(server, upload(server)), timeout=60)["status"] == "success"
    assert f"job {queued['id']}: attempt" not in workers.logs()  # the queued one never ran


def _attempts(dsn: str, job_id: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT attempts FROM whispercli_jobs WHERE id = %s", (job_id,))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


def _health(server: ServerHandle) -> dict[str, Any]:
    resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _until(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_health_lists_live_workers_and_a_job_without_one_says_why(
    server_factory: ServerFactory, workers: Workers
) -> None:
    server = server_factory.start("--database", workers.dsn)
    assert _health(server)["workers"] == []
    proc = workers.start(fake_seconds=3)
    resp = requests.post(
        server.url + SUBMIT.format(model="tiny").replace("cpuflex", "gpuflex"),
        json={"input": {}, "URL": upload(server)},
        headers=server.headers,
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    gpu_job = resp.json()["response"]
    cpu_job = submit(server, upload(server))
    _until(lambda: poll(server, cpu_job)["status"] == "processing")
    health = _until(lambda: (h := _health(server))["workers"] and h)
    [worker] = health["workers"]
    assert worker["queues"] == ["cpu"] and worker["device"] == "cpu"
    assert worker["id"] == f"{worker['host']}-{proc.pid}"
    assert worker["currentJob"] == cpu_job["id"]
    assert 0 <= worker["heartbeatAge"] < STALLED_AFTER_SECONDS
    assert health["queues"]["gpu"] == {"pending": 1, "processing": 0}
    assert health["queues"]["cpu"] == {"pending": 0, "processing": 1}
    waiting = poll(server, gpu_job)
    assert waiting["status"] == "pending"
    assert "no live worker serves the 'gpu' queue" in waiting["waiting"]
    assert "waiting" not in poll(server, cpu_job)
    assert wait_done(server, cpu_job, timeout=30)["status"] == "success"
    time.sleep(2 * POLL_SECONDS)
    assert poll(server, gpu_job)["status"] == "pending"  # never taken by the cpu worker
    workers.start(fake_seconds=0.2, queues="cpu,gpu")
    assert wait_done(server, gpu_job, timeout=30)["status"] == "success"
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)
    _until(lambda: [w["queues"] for w in _health(server)["workers"]] == [["cpu", "gpu"]])


def _rows(dsn: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        found = conn.execute(sql).fetchone()
    assert found is not None
    return int(found[0])


def test_one_worker_sweeps_expired_jobs_uploads_and_chunks(
    server_factory: ServerFactory, workers: Workers
) -> None:
    server = server_factory.start("--database", workers.dsn)  # its own sweep is off here
    for _ in range(2):
        workers.start(0.1, "cpu", "--retention-hours", "0.001")  # 3.6 s
    job = submit(server, upload(server))
    assert wait_done(server, job, timeout=30)["status"] == "success"
    spare = upload(server)  # an upload no job used expires too
    assert _rows(workers.dsn, "SELECT count(*) FROM whispercli_blob_chunks") >= 2
    ended = time.monotonic()
    _until(lambda: _rows(workers.dsn, "SELECT count(*) FROM whispercli_jobs") == 0, 40)
    assert time.monotonic() - ended >= 3.6 - 1  # not before the retention period
    for table in ("whispercli_uploads", "whispercli_blobs", "whispercli_blob_chunks"):
        _until(lambda t=table: _rows(workers.dsn, f"SELECT count(*) FROM {t}") == 0, 20)
    resp = requests.get(job["urls"]["GET"], headers=server.headers, timeout=10)
    assert resp.status_code == 404
    assert requests.put(spare, data=b"late", timeout=10).status_code in (403, 404, 410)
    assert workers.logs().count("retention sweep removed") >= 1


def test_a_poison_job_fails_after_3_attempts(
    server_factory: ServerFactory, workers: Workers
) -> None:
    server = server_factory.start("--database", workers.dsn)
    workers.start(fake_seconds=0.5)
    poison = submit(server, upload(server, b"CRASH and burn"))
    body = wait_done(server, poison, timeout=60)
    assert body["status"] == "failed", body
    assert "gave up after 3 attempts" in body["error"]
    assert _attempts(workers.dsn, poison["id"]) == 3
    healthy = submit(server, upload(server))  # the worker still serves
    assert wait_done(server, healthy, timeout=30)["status"] == "success"


@pytest.mark.slow
def test_a_healthy_job_longer_than_3_heartbeat_timeouts_runs_once(
    server_factory: ServerFactory, workers: Workers
) -> None:
    server = server_factory.start("--database", workers.dsn)
    workers.start(fake_seconds=3 * STALLED_AFTER_SECONDS + 1)
    workers.start(fake_seconds=3 * STALLED_AFTER_SECONDS + 1)
    job = submit(server, upload(server))
    body = wait_done(server, job, timeout=60)
    assert body["status"] == "success"
    assert _attempts(workers.dsn, job["id"]) == 1
    assert workers.logs().count(f"job {job['id']}: attempt") == 1


@pytest.mark.slow
def test_a_stopped_worker_wakes_as_a_zombie_whose_writes_change_nothing(
    server_factory: ServerFactory, workers: Workers
) -> None:
    server = server_factory.start("--database", workers.dsn)
    first = workers.start(fake_seconds=12)
    job = submit(server, upload(server))
    _processing(server, job)
    first.send_signal(signal.SIGSTOP)
    try:
        workers.start(fake_seconds=2)  # takes the job over once the heartbeat is stale
        body = wait_done(server, job, timeout=60)
    finally:
        first.send_signal(signal.SIGCONT)
    assert body["status"] == "success" and _attempts(workers.dsn, job["id"]) == 2
    result = body["result"]
    deadline = time.monotonic() + 20  # the zombie's engine finishes its 12 s and reports
    while "taken away: dropped" not in workers.logs() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "taken away: dropped" in workers.logs()
    again = poll(server, job)
    assert again["status"] == "success" and again["result"] == result
    assert _attempts(workers.dsn, job["id"]) == 2


def test_any_api_server_answers_any_poll(server_factory: ServerFactory, workers: Workers) -> None:
    """Two API servers on one database (sharing the key files, as machines behind one name
    would): a job submitted to one is long-polled on the other and finishes there."""
    first = server_factory.start("--database", workers.dsn)
    second = server_factory.start("--database", workers.dsn, dirs_from=first)
    workers.start(fake_seconds=1.5)
    job = submit(first, upload(first))
    on_second = {**job, "urls": {"GET": job["urls"]["GET"].replace(first.url, second.url)}}
    deadline = time.monotonic() + 30
    body = poll(second, on_second, wait=10)
    while body["status"] != "success" and time.monotonic() < deadline:
        body = poll(second, on_second, wait=10)
    assert body["status"] == "success"
    assert body["result"]["text"].startswith(" The fake engine")


@pytest.mark.slow
def test_postgres_restart_mid_job_loses_nothing(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    import requests

    cluster = PostgresCluster(durable=True)  # its own: this test restarts PostgreSQL
    cluster.start()
    pool = Workers(tmp_path / "workers", cluster.dsn())
    try:
        server = server_factory.start("--database", pool.dsn)
        pool.start(fake_seconds=6)
        job = submit(server, upload(server))
        _processing(server, job)
        cluster.stop("fast")
        down = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=10)
        assert down.status_code == 503 and "Retry-After" in down.headers
        time.sleep(2)
        cluster.start()
        deadline = time.monotonic() + 60
        body: dict[str, object] = {"status": "?"}
        while time.monotonic() < deadline:
            resp = requests.get(job["urls"]["GET"], headers=server.headers, timeout=10)
            if resp.status_code == 200:
                body = resp.json()
                if body["status"] in ("success", "failed", "cancelled"):
                    break
            time.sleep(0.3)
        assert body["status"] == "success", (body, pool.logs())
        # the interrupted attempt was taken over once the database was back, and only once
        assert _attempts(pool.dsn, job["id"]) == 2
        again = submit(server, upload(server))
        assert wait_done(server, again, timeout=60)["status"] == "success"
        assert "Traceback" not in server.log()
    finally:
        pool.stop_all()
        cluster.remove()
