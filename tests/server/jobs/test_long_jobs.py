"""Crashes, cancel, back-pressure and latency while a long job runs.

Most of these tests are about the server's scheduling, not what Whisper hears: their long jobs
run on the fake engine (``LONG_FAKE`` seconds, progress in ten ticks). The two that need the
real model are the cancel of each decoding path (sequential stops at a segment boundary, the
chunked path's engine is killed) and poll latency while the CPU decodes.
"""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.protocol import TIMEOUT, poll, submit, submit_raw, upload, wait_done
from support.servers import Server, ServerFactory, serve_module

pytestmark = pytest.mark.slow

SEQUENTIAL = {"speed": "accurate"}
"""Long jobs on the real model decode sequentially here: progress then moves segment by
segment (the chunked path's progress: tests/server/engine/test_progress.py)."""
LONG_FAKE = 3.0
"""Seconds a fake-engine job takes: long enough to poll, cancel or kill it mid-way."""
ONE_AT_A_TIME = ("--engine-jobs", "1")


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's server for the scheduling tests: LONG_FAKE-second fake-engine jobs, one at
    a time (``--engine-jobs 1``: a second job waits in the queue)."""
    yield from serve_module(tmp_path_factory, *ONE_AT_A_TIME, fake_engine=LONG_FAKE)


def processing_with_progress(server: Server, job: dict[str, object]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = poll(server, job)
        if body["status"] == "processing" and body.get("progress", 0) > 0:
            return body
        time.sleep(0.05)
    raise AssertionError("job never made progress")


def test_partial_progress_while_processing(fake_server: Server) -> None:
    server = fake_server
    job = submit(server, upload(server))
    body = processing_with_progress(server, job)
    assert 0 < body["progress"] < 1
    assert body["segments"] and body["segments"][0]["text"]
    assert body["completedAt"] is None and "result" not in body
    done = wait_done(server, job)
    assert done["status"] == "success"
    assert done["result"]["duration"] == LONG_FAKE  # all of it
    assert len(done["result"]["segments"]) >= len(body["segments"])


def test_sigkill_server_mid_job_then_restart_completes_it(server_factory: ServerFactory) -> None:
    first = server_factory.start(*ONE_AT_A_TIME, fake_engine=LONG_FAKE)
    job = submit(first, upload(first))
    queued = submit(first, upload(first))  # waits behind the long one
    processing_with_progress(first, job)
    worker = first.engine_pid()
    first.stop(kill=True)
    deadline = time.monotonic() + 10  # the orphaned worker notices and exits
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists() or b"Z" in Path(f"/proc/{worker}/stat").read_bytes()

    second = server_factory.start(*ONE_AT_A_TIME, dirs_from=first, fake_engine=LONG_FAKE)
    job["urls"]["GET"] = job["urls"]["GET"].replace(first.url, second.url)
    queued["urls"]["GET"] = queued["urls"]["GET"].replace(first.url, second.url)
    body = wait_done(second, job)
    assert body["status"] == "success", body
    assert body["result"]["duration"] == LONG_FAKE
    assert wait_done(second, queued)["status"] == "success"
    assert "recovered 1 interrupted jobs" in second.log()


def test_worker_killed_mid_job_is_retried_and_server_stays_up(fake_server: Server) -> None:
    server = fake_server
    job = submit(server, upload(server))
    processing_with_progress(server, job)
    old_worker = server.engine_pid()
    os.kill(old_worker, signal.SIGKILL)
    health = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=TIMEOUT)
    assert health.status_code == 200
    body = wait_done(server, job)
    assert body["status"] == "success", body
    assert server.engine_pid() != old_worker
    assert "engine crashed" in server.log()


def test_cancel_pending_and_processing(fake_server: Server) -> None:
    server = fake_server
    running = submit(server, upload(server))
    pending = submit(server, upload(server))
    processing_with_progress(server, running)
    cancel = f"{server.url}/v1/async/jobs/{{}}/cancel"
    resp = requests.post(cancel.format(pending["id"]), headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.json()["status"] == "cancelled"
    started = time.monotonic()
    resp = requests.post(cancel.format(running["id"]), headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    assert resp.json()["id"] == running["id"]
    body = wait_done(server, running, timeout=30)
    assert body["status"] == "cancelled"
    assert time.monotonic() - started < 15
    assert poll(server, pending)["status"] == "cancelled"
    assert wait_done(server, submit(server, upload(server)))["status"] == "success"


@pytest.mark.parametrize("speed", ["accurate", "default"])
def test_cancel_of_a_processing_job_ends_within_a_second(
    server_factory: ServerFactory, minute_clip: Path, speed: str
) -> None:
    """Sequential decoding stops at a segment boundary; the chunked path drops the job's
    chunks at once (a chunk still decoding is dropped when it ends). Either way the job is
    ``cancelled`` within about a second, the next job runs, and no semaphore leaks."""
    handle = server_factory.start()
    running = submit(handle, upload(handle, minute_clip), {"speed": speed})
    deadline = time.monotonic() + 60
    while poll(handle, running)["status"] != "processing" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # well into decoding
    cancel = f"{handle.url}/v1/async/jobs/{running['id']}/cancel"
    started = time.monotonic()
    resp = requests.post(cancel, headers=handle.headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    body = wait_done(handle, running, timeout=10)
    took = time.monotonic() - started
    assert body["status"] == "cancelled"
    assert took < 1.5, f"cancel took {took:.2f} s"
    assert wait_done(handle, submit(handle, upload(handle)))["status"] == "success"
    assert handle.stop() == 0
    assert "leaked semaphore" not in handle.log()


def test_full_queue_is_429_with_retry_after_and_long_poll_deadline(
    server_factory: ServerFactory,
) -> None:
    busy = server_factory.start("--max-queue", "1", *ONE_AT_A_TIME, fake_engine=LONG_FAKE)
    running = submit(busy, upload(busy))
    processing_with_progress(busy, running)
    waiting = submit(busy, upload(busy))
    resp = submit_raw(busy, upload(busy))
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0
    assert resp.json()["error"]["code"] == "queue_full"

    started = time.monotonic()
    body = poll(busy, waiting, wait=1)  # stays pending behind the long job
    assert body["status"] == "pending"
    assert 0.9 < time.monotonic() - started < 5

    for job in (waiting, running):
        requests.post(
            f"{busy.url}/v1/async/jobs/{job['id']}/cancel", headers=busy.headers, timeout=TIMEOUT
        )
    assert wait_done(busy, running)["status"] == "cancelled"
    assert submit_raw(busy, upload(busy)).status_code == 202  # room again


def test_polls_stay_fast_while_a_long_job_runs(server: Server, long_clip: Path) -> None:
    job = submit(server, upload(server, long_clip), SEQUENTIAL)
    processing_with_progress(server, job)
    session = requests.Session()
    latencies = []
    for _ in range(100):
        started = time.perf_counter()
        resp = session.get(job["urls"]["GET"], headers=server.headers, timeout=TIMEOUT)
        latencies.append((time.perf_counter() - started) * 1000)
        assert resp.status_code == 200
        if resp.json()["status"] != "processing":
            break
    assert len(latencies) >= 20, "the job finished too soon to measure"
    cuts = statistics.quantiles(latencies, n=100)
    print(
        f"\npoll latency under load over {len(latencies)} polls: p50 {cuts[49]:.1f} ms, "
        f"p95 {cuts[94]:.1f} ms, p99 {cuts[98]:.1f} ms, max {max(latencies):.1f} ms"
    )
    assert cuts[94] < 200
    cancel = f"{server.url}/v1/async/jobs/{job['id']}/cancel"
    requests.post(cancel, headers=server.headers, timeout=TIMEOUT)
    assert wait_done(server, job)["status"] in ("cancelled", "success")


def test_retention_deletes_old_jobs_and_files(server_factory: ServerFactory) -> None:
    short = server_factory.start("--retention-hours", "0.001", fake_engine=0.1)  # 3.6 s
    job = submit(short, upload(short))
    assert wait_done(short, job)["status"] == "success"
    assert list((short.data_dir / "results").iterdir())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        resp = requests.get(job["urls"]["GET"], headers=short.headers, timeout=TIMEOUT)
        if resp.status_code == 404:
            break
        time.sleep(0.5)
    assert resp.status_code == 404
    assert list((short.data_dir / "results").iterdir()) == []
    assert list((short.data_dir / "uploads").iterdir()) == []
