"""Load: 10 CLI processes x 10 jobs at once against one server, and 1,000 concurrent status
polls while those jobs run.

What is under test is the scheduling (no job lost, none run twice, no 5xx under a thousand
pollers), not what Whisper hears: the jobs run on the fake engine (FAKE_JOB seconds each, a
fixed text), so the 2 cores go to the CLIs, the server and the pollers. The audio is a short
espeak-ng clip ("hello world", made on the fly); each copy gets a distinct ID3v1 tag so that no
two files hash alike and the CLI's reuse-by-hash cannot hide a job.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

import loadgen
import pytest
from support.audio import short_word_clip
from support.figures import record
from support.procs import cmdline, tagged
from support.protocol import list_jobs
from support.sandbox import Sandbox, start_cli
from support.servers import Server

from whispercli.server.engine.fake import TEXT as FAKE_TEXT
from whispercli.server.engine.fake import TICKS as FAKE_TICKS
from whispercli.server.settings import FAKE_ENGINE_ENV

pytestmark = pytest.mark.reliability

FAKE_JOB = 0.05
"""Seconds the fake engine spends on a job."""

PROCESSES = 10
JOBS_EACH = 10
POLL_CONNECTIONS = 1000
POLLS_EACH = 3


def _clips(directory: Path) -> list[list[Path]]:
    clip = short_word_clip(directory / "hello.mp3").read_bytes()
    batches = []
    for p in range(PROCESSES):
        batch = []
        for j in range(JOBS_EACH):
            path = directory / f"p{p:02d}-j{j:02d}.mp3"
            path.write_bytes(clip + b"TAG" + f"whispercli load {p}-{j}".ljust(125).encode())
            batch.append(path)
        batches.append(batch)
    return batches


def _jobs(sandbox: Sandbox) -> list[dict[str, object]]:
    return list_jobs(sandbox.url, sandbox.auth())


def _is_fake_text(text: str) -> bool:
    """The fake engine's transcript (whatever lines the CLI printed it on)."""
    return text.split() == (FAKE_TEXT * FAKE_TICKS).split()


@pytest.mark.fake_engine(FAKE_JOB)
@pytest.mark.own_server  # it counts the jobs in the server's log
def test_ten_clis_by_ten_jobs_with_a_thousand_concurrent_polls(
    live_server: Server, sandbox: Sandbox, tmp_path: Path
) -> None:
    batches = _clips(tmp_path / "clips")
    started = time.monotonic()
    clis = [
        start_cli(
            sandbox,
            "transcribe",
            "--force",
            "--json",
            "-j",
            "10",
            "--beam-size",
            "1",
            *map(str, batch),
        )
        for batch in batches
    ]

    # Once a good part of the jobs is queued, hammer their poll URLs while they run.
    deadline = time.monotonic() + 120
    jobs = _jobs(sandbox)
    while len(jobs) < 30 and time.monotonic() < deadline:
        time.sleep(0.2)
        jobs = _jobs(sandbox)
    running = [j for j in jobs if j["status"] not in ("success", "failed", "cancelled")]
    poll_paths = [
        re.sub(r"^https?://[^/]+", "", str(j["urls"]["GET"]))  # type: ignore[index]
        for j in jobs
    ]
    load = loadgen.run(
        sandbox.port,
        poll_paths,
        sandbox.auth(),
        connections=POLL_CONNECTIONS,
        requests_each=POLLS_EACH,
    )
    unfinished_during_load = len(running)

    outputs = [cli.communicate(timeout=400) for cli in clis]
    elapsed = time.monotonic() - started
    final = _jobs(sandbox)
    saved = json.loads(sandbox.jobs_file.read_text())["jobs"]
    finished_lines = Counter(re.findall(r"job ([0-9a-f]{32}) success", live_server.log()))
    results = [item for out, _ in outputs if out.strip() for item in json.loads(out)]

    total = PROCESSES * JOBS_EACH
    record(
        "load: 10 CLIs x 10 jobs",
        submitted=total,
        server_jobs=len(final),
        finished=sum(j["status"] == "success" for j in final),
        lost=total - sum(j["status"] == "success" for j in final),
        state_entries=len(saved),
        cli_exit_codes=sorted(cli.returncode for cli in clis),
        seconds=round(elapsed, 1),
        audio=f"espeak-ng 'hello world' (~1 s mp3), fake engine ({FAKE_JOB} s a job)",
    )
    record(
        "load: concurrent status polls while jobs run",
        **load.summary(),
        jobs_unfinished_when_load_began=unfinished_during_load,
    )

    assert [cli.returncode for cli in clis] == [0] * PROCESSES, [e[-400:] for _, e in outputs]
    assert all("Traceback" not in err for _, err in outputs)
    assert len(results) == total and all(r.get("result") for r in results)
    assert all(_is_fake_text(r["result"]["text"]) for r in results)  # each its own job's text
    assert len(final) == total, "the server holds a different number of jobs than submitted"
    assert {j["status"] for j in final} == {"success"}
    assert len(saved) == total and len({s["id"] for s in saved}) == total, "state entries lost"
    assert {s["id"] for s in saved} == {j["id"] for j in final}
    assert set(finished_lines.values()) == {1} and len(finished_lines) == total, (
        "a job finished more than once (or never)"
    )
    assert unfinished_during_load > 0, "the poll load did not overlap running jobs"
    assert load.server_errors == 0, load.summary()
    assert not load.errors, load.summary()
    assert load.requests == POLL_CONNECTIONS * POLLS_EACH


def test_ten_clis_auto_start_one_server(sandbox: Sandbox, tmp_path: Path) -> None:
    """Ten CLIs at once with the local default endpoint and nothing listening: they must end
    with one server between them (the rest find it), and every job finishes once. The
    auto-started server is detached; the sandbox's reaper stops it."""
    clip = short_word_clip(tmp_path / "hello.mp3").read_bytes()
    # the fake engine for the server one of them starts (it inherits the environment)
    env = sandbox.env(WHISPERCLI_LOCAL_PORT=str(sandbox.port), **{FAKE_ENGINE_ENV: str(FAKE_JOB)})
    del env["WHISPERCLI_URL"]  # the local default: auto-start allowed
    files = []
    for i in range(PROCESSES):
        path = tmp_path / f"auto-{i}.mp3"
        path.write_bytes(clip + b"TAG" + f"whispercli autostart {i}".ljust(125).encode())
        files.append(path)
    clis = [start_cli(sandbox, "transcribe", "--force", "-q", str(path), env=env) for path in files]
    outputs = [cli.communicate(timeout=300) for cli in clis]
    servers = [
        pid
        for pid in tagged(sandbox.root)
        if " server run" in cmdline(pid) and "multiprocessing" not in cmdline(pid)
    ]
    jobs = _jobs(sandbox)
    saved = json.loads(sandbox.jobs_file.read_text())["jobs"]
    record(
        "load: 10 CLIs auto-starting the server at once",
        submitted=PROCESSES,
        finished=sum(j["status"] == "success" for j in jobs),
        server_jobs=len(jobs),
        state_entries=len(saved),
        servers_running=len(servers),
        cli_exit_codes=sorted(cli.returncode for cli in clis),
    )
    assert [cli.returncode for cli in clis] == [0] * PROCESSES, [e[-300:] for _, e in outputs]
    assert all(_is_fake_text(out) for out, _ in outputs), outputs
    assert len(servers) == 1, f"{len(servers)} servers running: {servers}"
    assert len(jobs) == PROCESSES and {j["status"] for j in jobs} == {"success"}
    assert len(saved) == PROCESSES
