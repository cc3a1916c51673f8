"""The PostgreSQL mode end to end: `server run --database` (no engine) and `worker run`
processes that take jobs from the queue: the real model where a test looks at the transcript,
else the fake engine; the fleet's timings short (``FAST_FLEET``: dead after 1 s of silence)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from support.cli import Cli
from support.pg_cluster import PostgresCluster
from support.procs import gone, until
from support.protocol import SUBMIT, poll, submit, upload, wait_done
from support.samples import assert_sample
from support.sandbox import Sandbox
from support.servers import FAST_FLEET, Server, ServerFactory, Workers

from whispercli.server.scale.queue import MAINTENANCE_QUEUE, migrate
from whispercli.server.settings import QUEUE_POLL_ENV, STALLED_AFTER_ENV


@pytest.fixture
def fleet_server(server_factory: ServerFactory, workers: Workers) -> Server:
    """An API server on the workers' database, with the fleet's short timings."""
    return server_factory.start("--database", workers.dsn, env=FAST_FLEET)


STALLED_AFTER = float(FAST_FLEET[STALLED_AFTER_ENV])
POLL = float(FAST_FLEET[QUEUE_POLL_ENV])


def test_a_job_runs_on_a_worker(fleet_server: Server, workers: Workers) -> None:
    job = submit(fleet_server, upload(fleet_server))
    time.sleep(0.5)
    assert poll(fleet_server, job)["status"] == "pending"  # no worker yet
    workers.start()
    body = wait_done(fleet_server, job, timeout=90)
    assert body["status"] == "success", (body, workers.logs())
    assert_sample(body["result"]["text"])
    second = submit(fleet_server, upload(fleet_server))
    assert wait_done(fleet_server, second, timeout=60)["status"] == "success"
    assert "attempt 1" in workers.logs()
    assert workers.stop_all() == [0]
    assert "Traceback" not in workers.logs() and "leaked semaphore" not in workers.logs()


def _processing(server: Server, job: dict[str, object]) -> None:
    """Wait until ``job`` runs and has made progress."""

    def moving() -> bool:
        body = poll(server, job)
        return body["status"] == "processing" and body.get("progress", 0) > 0

    until(moving, timeout=60, interval=0.1)


FAKE_JOB = 4.0
"""Seconds a fake-engine job takes where a test needs a job to be running for a while."""


@pytest.mark.slow
def test_sigkilled_worker_job_finishes_on_the_other(fleet_server: Server, workers: Workers) -> None:
    import psycopg

    workers.start(FAKE_JOB), workers.start(FAKE_JOB)
    job = submit(fleet_server, upload(fleet_server))
    _processing(fleet_server, job)
    running = next(worker for worker in workers.started if job["id"] in worker.log())
    engine_children = running.children()
    killed_at = time.monotonic()
    running.kill()
    assert all(gone(pid, 3) for pid in engine_children), "the engine outlived its worker"
    other = next(worker for worker in workers.started if worker is not running)
    retaken = f"job {job['id']}: attempt 2"
    while retaken not in other.log():
        assert time.monotonic() - killed_at < 30, "no other worker took the job over"
        time.sleep(0.1)
    repick = time.monotonic() - killed_at
    # a dead worker is noticed after its heartbeat is STALLED_AFTER seconds old, by the
    # reaper (every second), and its task picked up within POLL seconds: 1 + 1 + 0.2, + 5 slack
    assert repick < STALLED_AFTER + 1 + POLL + 5, f"re-picked after {repick:.1f} s"
    body = wait_done(fleet_server, job, timeout=120)
    assert body["status"] == "success", (body, workers.logs())
    assert body["result"]["duration"] == FAKE_JOB  # the whole job, run again from the start
    took = time.monotonic() - killed_at
    with psycopg.connect(workers.dsn) as conn:
        row = conn.execute("SELECT attempts FROM whispercli_jobs WHERE id = %s", (job["id"],))
        assert row.fetchone() == (2,)
    assert took < 60, f"finished {took:.1f} s after the kill"
    print(f"re-picked {repick:.1f} s and finished {took:.1f} s after the SIGKILL")


@pytest.mark.slow
def test_cancel_of_a_job_on_a_worker(fleet_server: Server, workers: Workers) -> None:
    """A cancel ends a queued job and one of two jobs decoded together on a worker; the
    other of the two goes on to its end."""
    import requests

    workers.start(FAKE_JOB, "cpu", "--engine-jobs", "2")  # the third job waits in the queue
    running = [submit(fleet_server, upload(fleet_server)) for _ in range(2)]
    queued = submit(fleet_server, upload(fleet_server))
    for job in running:
        _processing(fleet_server, job)
    for job in (queued, running[0]):
        started = time.monotonic()
        resp = requests.post(
            f"{fleet_server.url}/v1/async/jobs/{job['id']}/cancel",
            headers=fleet_server.headers,
            timeout=10,
        )
        assert resp.status_code == 200
        assert wait_done(fleet_server, job, timeout=10)["status"] == "cancelled"
        assert time.monotonic() - started < 1.5
    other = wait_done(fleet_server, running[1], timeout=60)
    assert other["status"] == "success" and _attempts(workers.dsn, running[1]["id"]) == 1
    assert (
        wait_done(fleet_server, submit(fleet_server, upload(fleet_server)), timeout=60)["status"]
        == "success"
    )
    assert f"job {queued['id']}: attempt" not in workers.logs()  # the queued one never ran


def _attempts(dsn: str, job_id: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT attempts FROM whispercli_jobs WHERE id = %s", (job_id,))
        found = row.fetchone()
    assert found is not None
    return int(found[0])


def _health(server: Server) -> dict[str, Any]:
    resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=10)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_health_lists_live_workers_and_a_job_without_one_says_why(
    fleet_server: Server, workers: Workers
) -> None:
    assert _health(fleet_server)["workers"] == []
    proc = workers.start(fake_seconds=3)
    resp = requests.post(
        fleet_server.url + SUBMIT.format(model="tiny").replace("cpuflex", "gpuflex"),
        json={"input": {}, "URL": upload(fleet_server)},
        headers=fleet_server.headers,
        timeout=10,
    )
    assert resp.status_code == 202, resp.text
    gpu_job = resp.json()["response"]
    cpu_job = submit(fleet_server, upload(fleet_server))
    until(lambda: poll(fleet_server, cpu_job)["status"] == "processing")
    # the worker's row names the job once the engine has it, a moment after the claim
    health = until(
        lambda: (h := _health(fleet_server))["workers"] and h["workers"][0]["currentJobs"] and h
    )
    [worker] = health["workers"]
    assert worker["queues"] == ["cpu"] and worker["device"] == "cpu"
    assert worker["id"] == f"{worker['host']}-{proc.pid}"
    assert worker["currentJobs"] == [cpu_job["id"]] and worker["capacity"] == 8
    assert 0 <= worker["heartbeatAge"] < STALLED_AFTER
    assert health["queues"]["gpu"] == {"pending": 1, "processing": 0}
    assert health["queues"]["cpu"] == {"pending": 0, "processing": 1}
    waiting = poll(fleet_server, gpu_job)
    assert waiting["status"] == "pending"
    assert "no live worker serves the 'gpu' queue" in waiting["waiting"]
    assert "waiting" not in poll(fleet_server, cpu_job)
    assert wait_done(fleet_server, cpu_job, timeout=30)["status"] == "success"
    time.sleep(2 * POLL)
    assert poll(fleet_server, gpu_job)["status"] == "pending"  # never taken by the cpu worker
    workers.start(fake_seconds=0.2, queues="cpu,gpu")
    assert wait_done(fleet_server, gpu_job, timeout=30)["status"] == "success"
    proc.stop(timeout=20)
    until(lambda: [w["queues"] for w in _health(fleet_server)["workers"]] == [["cpu", "gpu"]])


def test_one_worker_runs_jobs_queued_together_at_once_up_to_its_engine_jobs(
    fleet_server: Server, workers: Workers, tmp_path: Path
) -> None:
    """Jobs queued together go to one worker's engine together (decoded in one batch), as on
    the embedded server; the one past ``--engine-jobs`` waits, and says why. A SIGTERM puts
    the running ones back in the queue, their attempt not counted."""
    jobs = [submit(fleet_server, upload(fleet_server)) for _ in range(3)]
    first = workers.start(FAKE_JOB, "cpu", "--engine-jobs", "2")

    def two_running() -> list[str] | None:
        [worker] = _health(fleet_server)["workers"] or [None]
        running = worker["currentJobs"] if worker else []
        return running if len(running) == 2 else None

    running = until(two_running, timeout=60, interval=0.1)
    status = {job["id"]: poll(fleet_server, job)["status"] for job in jobs}
    assert sorted(status.values()) == ["pending", "processing", "processing"], status
    assert sorted(running) == sorted(i for i, s in status.items() if s == "processing")
    [third] = [job for job in jobs if status[job["id"]] == "pending"]
    assert poll(fleet_server, third)["waiting"] == (
        "the only worker of the 'cpu' queue is busy (its engine is full)"
    )
    shown = Cli(tmp_path / "cli", fleet_server).run("--url", fleet_server.url, "server", "status")
    assert f"\tcpu\trunning {', '.join(running)} (2 of 2)" in shown.out, shown.out
    assert first.stop(timeout=20) == 0
    for job in jobs:  # back in the queue, their attempt not counted
        assert poll(fleet_server, job)["status"] == "pending"
        assert _attempts(workers.dsn, job["id"]) == 0
    workers.start(FAKE_JOB)  # --engine-jobs 8: all three at once
    health = until(lambda: (h := _health(fleet_server))["workers"] and h)
    assert health["workers"][0]["capacity"] == 8
    for job in jobs:
        body = wait_done(fleet_server, job, timeout=60)
        assert body["status"] == "success", (body, workers.logs())
        assert _attempts(workers.dsn, job["id"]) == 1
    until(lambda: _health(fleet_server)["workers"][0]["currentJobs"] == [])
    assert workers.stop_all() == [0, 0]
    assert "Traceback" not in workers.logs()  # the tasks put back end with a line each
    assert workers.logs().count("ended with status: Error, to retry") == 2


def test_a_worker_runs_its_engine_jobs_at_once_whatever_its_cores(
    fleet_server: Server, workers: Workers
) -> None:
    """Procrastinate runs a sync task on the event loop's default executor, whose threads are
    the cores + 4 (6 on 2 cores): a worker with ``--engine-jobs 10`` took 10 tasks but ran 6, the
    other 4 held by it while they waited for a thread, and the fetch's own helper threads
    queued behind them (the fleet's chores too)."""
    jobs = [submit(fleet_server, upload(fleet_server)) for _ in range(10)]
    workers.start(FAKE_JOB, "cpu", "--engine-jobs", "10")

    def all_running() -> bool:
        [worker] = _health(fleet_server)["workers"] or [None]
        return worker is not None and len(worker["currentJobs"]) == 10

    until(all_running, timeout=30, interval=0.2)
    for job in jobs:
        assert wait_done(fleet_server, job, timeout=60)["status"] == "success"


def test_a_burst_of_jobs_spreads_over_idle_workers_before_it_batches(
    fleet_server: Server, workers: Workers
) -> None:
    """Every worker races for each new task; an idle one wins it, so 4 jobs on 2 workers go 2
    and 2 (before, a worker with room for 8 took them as readily as an idle one: 3 and 1)."""
    pair = [workers.start(FAKE_JOB), workers.start(FAKE_JOB)]
    until(lambda: len(_health(fleet_server)["workers"]) == 2)
    urls = [upload(fleet_server) for _ in range(4)]
    jobs = [submit(fleet_server, url) for url in urls]
    for job in jobs:
        assert wait_done(fleet_server, job, timeout=60)["status"] == "success"
    assert [worker.log().count(": attempt 1 on ") for worker in pair] == [2, 2], workers.logs()


def test_the_fleet_chores_run_while_every_engine_slot_is_busy(
    fleet_server: Server, workers: Workers
) -> None:
    """``retry_stalled`` (every second) and the retention sweep have a task slot of their own
    beside the engine's (and go before queued jobs): a worker busy with a long job, and a
    backlog behind it, must not hold back the take-over of a dead worker's jobs."""
    import psycopg

    workers.start(3.0, "cpu", "--engine-jobs", "1")
    jobs = [submit(fleet_server, upload(fleet_server)) for _ in range(2)]
    for job in jobs:
        assert wait_done(fleet_server, job, timeout=60)["status"] == "success"
    with psycopg.connect(workers.dsn) as conn:
        during = [
            count
            for (count,) in conn.execute(
                "SELECT (SELECT count(*) FROM procrastinate_events e JOIN procrastinate_jobs j"
                " ON j.id = e.job_id WHERE e.type = 'started' AND j.queue_name = %s"
                " AND e.at > to_timestamp(w.started_at) AND e.at < to_timestamp(w.completed_at))"
                " FROM whispercli_jobs w ORDER BY w.started_at",
                (MAINTENANCE_QUEUE,),
            ).fetchall()
        ]
    assert len(during) == 2
    assert min(during) >= 2, f"chores started during each 3 s job: {during}"


def _rows(dsn: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as conn:
        found = conn.execute(sql).fetchone()
    assert found is not None
    return int(found[0])


def test_one_worker_sweeps_expired_jobs_uploads_and_chunks(
    server_factory: ServerFactory, workers: Workers
) -> None:
    server = server_factory.start(
        "--database", workers.dsn, env=FAST_FLEET
    )  # its own sweep is off here
    for _ in range(2):
        workers.start(0.1, "cpu", "--retention-hours", "0.001")  # 3.6 s
    job = submit(server, upload(server))
    assert wait_done(server, job, timeout=30)["status"] == "success"
    spare = upload(server)  # an upload no job used expires too
    assert _rows(workers.dsn, "SELECT count(*) FROM whispercli_blob_chunks") >= 2
    ended = time.monotonic()
    until(lambda: _rows(workers.dsn, "SELECT count(*) FROM whispercli_jobs") == 0, 40)
    assert time.monotonic() - ended >= 3.6 - 1  # not before the retention period
    for table in ("whispercli_uploads", "whispercli_blobs", "whispercli_blob_chunks"):
        until(lambda t=table: _rows(workers.dsn, f"SELECT count(*) FROM {t}") == 0, 20)
    resp = requests.get(job["urls"]["GET"], headers=server.headers, timeout=10)
    assert resp.status_code == 404
    assert requests.put(spare, data=b"late", timeout=10).status_code in (403, 404, 410)
    assert workers.logs().count("retention sweep removed") >= 1


def test_a_poison_job_fails_after_3_attempts(fleet_server: Server, workers: Workers) -> None:
    """A poison file crashes the engine it shares with a healthy job: the healthy one is run
    again (alone, as every job after a crash) and succeeds; the poison fails after 3."""
    poison = submit(fleet_server, upload(fleet_server, b"CRASH and burn"))
    beside = submit(fleet_server, upload(fleet_server))
    workers.start(fake_seconds=0.5)
    body = wait_done(fleet_server, poison, timeout=60)
    assert body["status"] == "failed", body
    assert "gave up after 3 attempts" in body["error"]
    assert _attempts(workers.dsn, poison["id"]) == 3
    beside_body = wait_done(fleet_server, beside, timeout=60)
    assert beside_body["status"] == "success", (beside_body, workers.logs())
    assert _attempts(workers.dsn, beside["id"]) <= 2  # at most the one crash it shared
    healthy = submit(fleet_server, upload(fleet_server))  # the worker still serves
    assert wait_done(fleet_server, healthy, timeout=30)["status"] == "success"


@pytest.mark.slow
def test_a_healthy_job_longer_than_3_heartbeat_timeouts_runs_once(
    fleet_server: Server, workers: Workers
) -> None:
    workers.start(fake_seconds=3 * STALLED_AFTER + 1)
    workers.start(fake_seconds=3 * STALLED_AFTER + 1)
    job = submit(fleet_server, upload(fleet_server))
    body = wait_done(fleet_server, job, timeout=60)
    assert body["status"] == "success"
    assert _attempts(workers.dsn, job["id"]) == 1
    assert workers.logs().count(f"job {job['id']}: attempt") == 1


@pytest.mark.slow
def test_a_stopped_worker_wakes_as_a_zombie_whose_writes_change_nothing(
    fleet_server: Server, workers: Workers
) -> None:
    first = workers.start(fake_seconds=6)
    job = submit(fleet_server, upload(fleet_server))
    _processing(fleet_server, job)
    os.kill(first.pid, signal.SIGSTOP)
    try:
        workers.start(fake_seconds=2)  # takes the job over once the heartbeat is stale
        try:
            body = wait_done(fleet_server, job, timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{workers.logs()[-4000:]}") from None
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert body["status"] == "success" and _attempts(workers.dsn, job["id"]) == 2
    result = body["result"]
    # the zombie's engine finishes its 6 s and reports
    until(lambda: "taken away: dropped" in workers.logs(), timeout=20, interval=0.2)
    again = poll(fleet_server, job)
    assert again["status"] == "success" and again["result"] == result
    assert _attempts(workers.dsn, job["id"]) == 2


def test_any_api_server_answers_any_poll(server_factory: ServerFactory, workers: Workers) -> None:
    """Two API servers on one database (sharing the key files, as machines behind one name
    would): a job submitted to one is long-polled on the other and finishes there."""
    first = server_factory.start("--database", workers.dsn, env=FAST_FLEET)
    second = server_factory.start("--database", workers.dsn, dirs_from=first, env=FAST_FLEET)
    workers.start(fake_seconds=1.5)
    job = submit(first, upload(first))
    on_second = {**job, "urls": {"GET": job["urls"]["GET"].replace(first.url, second.url)}}
    body = wait_done(second, on_second, timeout=30)
    assert body["status"] == "success"
    assert body["result"]["text"].startswith(" The fake engine")


@pytest.mark.slow
def test_postgres_restart_mid_job_loses_nothing(
    server_factory: ServerFactory, postgres_outage: PostgresCluster, sandbox: Sandbox
) -> None:
    import requests

    pool = Workers(sandbox, postgres_outage.new_database(migrate))  # the test restarts it
    try:
        server = server_factory.start("--database", pool.dsn, env=FAST_FLEET)
        pool.start(fake_seconds=2)
        job = submit(server, upload(server))
        _processing(server, job)
        postgres_outage.stop("fast")
        down = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=10)
        assert down.status_code == 503 and "Retry-After" in down.headers
        time.sleep(2)
        postgres_outage.start()
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
