"""Crashes, cancel, back-pressure and latency while a long file transcribes."""

from __future__ import annotations

import os
import signal
import statistics
import time
from pathlib import Path

import pytest
import requests
from local_server import ServerFactory, ServerHandle
from server_helpers import (
    TIMEOUT,
    make_long_clip,
    poll,
    submit,
    submit_raw,
    upload,
    wait_done,
)

READINGS = 3  # about 3 minutes of speech: ~9 s of work for the tiny model on 2 cores
pytestmark = pytest.mark.slow

SEQUENTIAL = {"speed": "accurate"}
"""Long jobs decode sequentially here: progress then moves segment by segment (the chunked
path's progress: test_progress.py)."""


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_long_clip(tmp_path_factory.mktemp("audio"), READINGS)


def worker_pid(server: ServerHandle) -> int:
    """The engine worker: the server's child started by multiprocessing's spawn_main."""
    tasks = Path(f"/proc/{server.proc.pid}/task").iterdir()  # children of every thread
    children = [c for task in tasks for c in (task / "children").read_text().split()]
    for child in children:
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"spawn_main" in cmdline:
            return int(child)
    raise AssertionError(f"no worker among {children}")


def processing_with_progress(server: ServerHandle, job: dict[str, object]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = poll(server, job)
        if body["status"] == "processing" and body.get("progress", 0) > 0:
            return body
        time.sleep(0.05)
    raise AssertionError("job never made progress")


def test_partial_progress_while_processing(server: ServerHandle, long_clip: Path) -> None:
    job = submit(server, upload(server, long_clip), SEQUENTIAL)
    body = processing_with_progress(server, job)
    assert 0 < body["progress"] < 1
    assert body["segments"] and body["segments"][0]["text"]
    assert body["completedAt"] is None and "result" not in body
    done = wait_done(server, job)
    assert done["status"] == "success"
    assert done["result"]["duration"] > 150
    assert len(done["result"]["segments"]) >= len(body["segments"])


def test_sigkill_server_mid_job_then_restart_completes_it(
    server_factory: ServerFactory, long_clip: Path
) -> None:
    first = server_factory.start()
    job = submit(first, upload(first, long_clip), SEQUENTIAL)
    queued = submit(first, upload(first))  # waits behind the long one
    processing_with_progress(first, job)
    worker = worker_pid(first)
    first.stop(kill=True)
    deadline = time.monotonic() + 10  # the orphaned worker notices and exits
    while Path(f"/proc/{worker}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{worker}").exists() or b"Z" in Path(f"/proc/{worker}/stat").read_bytes()

    second = server_factory.start(dirs_from=first)
    job["urls"]["GET"] = job["urls"]["GET"].replace(first.url, second.url)
    queued["urls"]["GET"] = queued["urls"]["GET"].replace(first.url, second.url)
    body = wait_done(second, job)
    assert body["status"] == "success", body
    assert body["result"]["duration"] > 150
    assert wait_done(second, queued)["status"] == "success"
    assert "recovered 1 interrupted jobs" in second.log()


def test_worker_killed_mid_job_is_retried_and_server_stays_up(
    server: ServerHandle, long_clip: Path
) -> None:
    job = submit(server, upload(server, long_clip), SEQUENTIAL)
    processing_with_progress(server, job)
    old_worker = worker_pid(server)
    os.kill(old_worker, signal.SIGKILL)
    health = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=TIMEOUT)
    assert health.status_code == 200
    body = wait_done(server, job)
    assert body["status"] == "success", body
    assert worker_pid(server) != old_worker
    assert "engine crashed" in server.log()


def test_cancel_pending_and_processing(server_factory: ServerFactory, long_clip: Path) -> None:
    server = server_factory.start("--engine-jobs", "1")  # the second job waits in the queue
    running = submit(server, upload(server, long_clip), SEQUENTIAL)
    pending = submit(server, upload(server, long_clip), SEQUENTIAL)
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
    server_factory: ServerFactory, long_clip: Path, speed: str
) -> None:
    """Sequential decoding stops at a segment boundary; the chunked path drops the job's
    chunks at once (a chunk still decoding is dropped when it ends). Either way the job is
    ``cancelled`` within about a second, the next job runs, and no semaphore leaks."""
    handle = server_factory.start()
    running = submit(handle, upload(handle, long_clip), {"speed": speed})
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
    server_factory: ServerFactory, long_clip: Path
) -> None:
    busy = server_factory.start("--max-queue", "1", "--engine-jobs", "1")
    running = submit(busy, upload(busy, long_clip), SEQUENTIAL)
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


def test_polls_stay_fast_while_a_long_job_runs(server: ServerHandle, long_clip: Path) -> None:
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
    short = server_factory.start("--retention-hours", "0.001")  # 3.6 s
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
