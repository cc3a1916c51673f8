"""Faults between the CLI and the server, and crashes of the server and its worker.

Every test counts jobs submitted (asked for by a client), finished (``success`` on the server)
and lost (submitted but never finished), and checks that no job ran twice: the server's job
list and the CLI's state file must each hold exactly the jobs that were asked for.

What is under test is the transport and crash recovery, not what Whisper hears: the jobs run
on the fake engine (``FAKE_JOB`` seconds; ``LONG_FAKE`` where a crash must land mid-job), and
each CLI must print that job's text, whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from faultproxy import FaultProxy, Rule
from support.figures import record
from support.procs import alive
from support.protocol import list_jobs
from support.samples import SAMPLE_MP3
from support.sandbox import Sandbox, run_cli, start_cli
from support.servers import BOTH_BACKENDS, Server

from whispercli.server.engine.fake import TEXT as FAKE_TEXT
from whispercli.server.engine.fake import TICKS as FAKE_TICKS

FAKE_JOB = 0.5
LONG_FAKE = 3.0
pytestmark = [pytest.mark.reliability, pytest.mark.fake_engine(FAKE_JOB)]
POLL = "GET /v1/async/jobs/"
SUBMIT = "POST /v1/async/ent/"


def server_jobs(sandbox: Sandbox) -> list[dict[str, Any]]:
    return list_jobs(sandbox.url, sandbox.auth())


def saved_jobs(sandbox: Sandbox) -> list[dict[str, Any]]:
    if not sandbox.jobs_file.exists():
        return []
    return list(json.loads(sandbox.jobs_file.read_text())["jobs"])


def tally(name: str, sandbox: Sandbox, submitted: int, **extra: Any) -> dict[str, int]:
    """Record and return submitted / on server / finished / lost / duplicates for a fault."""
    jobs = server_jobs(sandbox)
    finished = sum(j["status"] == "success" for j in jobs)
    figures = {
        "submitted": submitted,
        "server_jobs": len(jobs),
        "finished": finished,
        "lost": submitted - finished,
        "duplicates": max(0, len(jobs) - submitted),
        "state_entries": len(saved_jobs(sandbox)),
        **extra,
    }
    record(f"fault: {name}", **figures)
    return figures


def assert_fake_text(text: str) -> None:
    """The fake engine's whole transcript (whatever lines the CLI printed it on)."""
    assert text.split() == (FAKE_TEXT * FAKE_TICKS).split(), f"not the job's text: {text!r}"


def assert_no_traceback(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


@pytest.fixture(scope="module")
def module_proxy() -> Iterator[FaultProxy]:
    """One proxy for the module, made before its servers: a server behind a reverse proxy
    is told its public URL (``--public-url``), or the URLs it hands out bypass the proxy."""
    with FaultProxy(0) as p:
        yield p


@pytest.fixture
def server_args(request: pytest.FixtureRequest, module_proxy: FaultProxy) -> tuple[str, ...]:
    """The proxy's URL as the server's public URL, for a test that goes through the proxy."""
    return ("--public-url", module_proxy.url) if "proxy" in request.fixturenames else ()


@pytest.fixture
def proxy(live_server: Server, module_proxy: FaultProxy) -> FaultProxy:
    module_proxy.reset(live_server.port)
    return module_proxy


# -- the proxy between the CLI and the server ----------------------------------------------------

SCENARIOS: dict[str, list[Rule]] = {
    "drop mid-upload": [Rule("drop", match="PUT ", after_bytes=20_000)],
    "reset mid-upload": [Rule("reset", match="PUT ", after_bytes=20_000)],
    "drop mid-poll headers": [Rule("drop", "down", match=POLL, after_bytes=60)],
    "drop mid-poll body": [Rule("drop", "down", match=POLL, after_bytes=200)],
    "reset mid-poll response": [Rule("reset", "down", match=POLL, after_bytes=0)],
    "503 bursts on every step": [
        Rule("respond", match="POST /v1/input/upload-url", status=503, times=2),
        Rule("respond", match="PUT ", status=502, times=2),
        Rule("respond", match=SUBMIT, status=503, times=3),
        Rule("respond", match=POLL, status=503, times=3),
    ],
    # Past the headers, inside the JSON body: the job exists but the client did not hear so.
    "drop the submit answer": [Rule("drop", "down", match=SUBMIT, after_bytes=200)],
    "slow answers": [
        Rule("delay", "down", match=SUBMIT, seconds=2),
        Rule("delay", "down", match=POLL, seconds=2),
    ],
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_cli_through_faulty_network(
    scenario: str, live_server: Server, proxy: FaultProxy, sandbox: Sandbox
) -> None:
    rules = [
        proxy.add(Rule(**{**vars(r), "fired": 0, "_reserved": 0})) for r in SCENARIOS[scenario]
    ]
    result = run_cli(
        sandbox,
        "transcribe",
        str(SAMPLE_MP3),
        env=sandbox.env(WHISPERCLI_URL=proxy.url),
        timeout=120,
    )
    figures = tally(
        scenario,
        sandbox,
        submitted=1,
        faults_injected=sum(r.fired for r in rules),
        exit_code=result.returncode,
    )
    assert all(r.fired == r.times for r in rules), f"not every fault fired: {rules}"
    assert_no_traceback(result.stderr)
    assert result.returncode == 0, result.stderr
    assert_fake_text(result.stdout)
    assert figures["server_jobs"] == 1, "a retried request created a second job"
    assert figures["finished"] == 1
    assert figures["state_entries"] == 1


# -- the server killed and restarted -------------------------------------------------------------


def _wait_status(sandbox: Sandbox, wanted: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = server_jobs(sandbox)
        for job in jobs:
            if job["status"] == wanted:
                return job
        time.sleep(0.05)
    raise AssertionError(f"no job reached {wanted!r} within {timeout} s: {server_jobs(sandbox)}")


def _submit_until_processing(sandbox: Sandbox) -> str:
    """Submit the sample with the CLI; its job id once the server runs it."""
    submitted = run_cli(sandbox, "submit", "-q", str(SAMPLE_MP3))
    assert submitted.returncode == 0, submitted.stderr
    _wait_status(sandbox, "processing")
    return submitted.stdout.strip()


def _background_cli(sandbox: Sandbox, *args: str, url: str | None = None) -> subprocess.Popen[str]:
    return start_cli(sandbox, *args, env=sandbox.env(**({"WHISPERCLI_URL": url} if url else {})))


def _restart(server: Server) -> float:
    """SIGKILL the server alone, start it again on the same port and data dir; downtime in s.

    The killed server's children (the engine worker) get no signal; they must notice and exit
    by themselves rather than linger as orphans next to the new server.
    """
    orphans = server.children()
    started = time.monotonic()
    server.kill()
    server.start()
    downtime = time.monotonic() - started
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in orphans) and time.monotonic() < deadline:
        time.sleep(0.1)
    lingering = [pid for pid in orphans if alive(pid)]
    assert not lingering, f"the killed server's children {lingering} are still running"
    return downtime


@BOTH_BACKENDS
@pytest.mark.own_server
def test_server_killed_during_upload(
    live_server: Server, proxy: FaultProxy, sandbox: Sandbox
) -> None:
    # Hold the upload in the proxy so the kill lands while it is in flight.
    proxy.add(Rule("delay", match="PUT ", seconds=1.5))
    cli = _background_cli(sandbox, "transcribe", str(SAMPLE_MP3), url=proxy.url)
    deadline = time.monotonic() + 30
    while not any(line.startswith("PUT ") for line in proxy.stats.request_lines):
        if time.monotonic() > deadline or cli.poll() is not None:
            out, err = cli.communicate(timeout=30)
            raise AssertionError(
                f"no upload went through the proxy: {proxy.stats.request_lines}, "
                f"exit {cli.returncode}, stdout {out!r}, stderr {err!r}"
            )
        time.sleep(0.02)
    downtime = _restart(live_server)
    out, err = cli.communicate(timeout=120)
    figures = tally("server SIGKILL during upload", sandbox, 1, downtime_s=round(downtime, 2))
    assert_no_traceback(err)
    assert cli.returncode == 0, err
    assert_fake_text(out)
    assert figures["server_jobs"] == 1 and figures["finished"] == 1


@BOTH_BACKENDS
@pytest.mark.own_server
@pytest.mark.fake_engine(LONG_FAKE)
def test_server_killed_during_processing(live_server: Server, sandbox: Sandbox) -> None:
    job_id = _submit_until_processing(sandbox)
    downtime = _restart(live_server)
    result = run_cli(sandbox, "wait", job_id, timeout=180)
    figures = tally("server SIGKILL during processing", sandbox, 1, downtime_s=round(downtime, 2))
    if live_server.worker is None:  # the embedded server's engine died with it
        assert "recovered 1 interrupted" in live_server.tail(200), "the kill missed the job"
    else:  # the worker elsewhere carried on: one attempt, no take-over
        log = live_server.worker.log()
        assert f"job {job_id}: attempt 1" in log and "attempt 2" not in log, log
    assert_no_traceback(result.stderr)
    assert result.returncode == 0, result.stderr
    assert_fake_text(result.stdout)
    assert figures["server_jobs"] == 1 and figures["finished"] == 1


@BOTH_BACKENDS
@pytest.mark.own_server
@pytest.mark.fake_engine(LONG_FAKE)
def test_server_killed_during_long_poll(
    live_server: Server, proxy: FaultProxy, sandbox: Sandbox
) -> None:
    # Through the (fault-free) proxy only to see when the waiter is parked in a long-poll.
    via_proxy = sandbox.env(WHISPERCLI_URL=proxy.url)
    submitted = run_cli(sandbox, "submit", "-q", str(SAMPLE_MP3), env=via_proxy)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    waiter = _background_cli(sandbox, "wait", job_id, url=proxy.url)
    deadline = time.monotonic() + 30
    while not any(POLL in line and "wait=" in line for line in proxy.stats.request_lines):
        assert time.monotonic() < deadline and waiter.poll() is None, "the waiter never long-polled"
        time.sleep(0.02)
    time.sleep(0.3)
    downtime = _restart(live_server)
    out, err = waiter.communicate(timeout=180)
    figures = tally("server SIGKILL during long-poll", sandbox, 1, downtime_s=round(downtime, 2))
    assert_no_traceback(err)
    assert waiter.returncode == 0, f"wait did not survive the restart: {err}"
    assert_fake_text(out)
    assert figures["server_jobs"] == 1 and figures["finished"] == 1


@pytest.mark.fake_engine(LONG_FAKE)
def test_worker_killed_mid_job(live_server: Server, sandbox: Sandbox) -> None:
    job_id = _submit_until_processing(sandbox)
    worker = live_server.engine_pid()
    os.kill(worker, signal.SIGKILL)
    result = run_cli(sandbox, "wait", job_id, timeout=180)
    figures = tally("worker SIGKILL mid-job", sandbox, 1, worker_pid_killed=1)
    assert live_server.proc is not None and live_server.proc.poll() is None, "the server died"
    assert live_server.engine_pid() != worker, "no new worker was started"
    assert_no_traceback(result.stderr)
    assert result.returncode == 0, result.stderr
    assert_fake_text(result.stdout)
    assert figures["server_jobs"] == 1 and figures["finished"] == 1
