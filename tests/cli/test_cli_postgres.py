"""The CLI against an API server in PostgreSQL mode (`server run --database`) and its
workers (issue 19): why a pending job waits, in every place the CLI shows a job; the fleet in
`server status`; an idle worker's log that says only what matters."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from support.cli import Cli, in_a_terminal
from support.samples import SAMPLE_MP3
from support.servers import ServerFactory, Workers

WHY = "no live worker serves the 'cpu' queue"


def test_a_pending_job_says_why_and_server_status_shows_the_fleet(
    server_factory: ServerFactory, workers: Workers, tmp_path: Path
) -> None:
    server = server_factory.start("--database", workers.dsn)
    cli = Cli(tmp_path / "cli", server)
    job_id = cli.run("submit", "-q", str(SAMPLE_MP3)).out.strip()
    # Item 5: status, status --json, jobs show and wait's progress line all say why.
    status = cli.run("status", job_id)
    assert status.code == 0 and WHY in status.out, status.out
    assert WHY in json.loads(cli.run("status", "--json", job_id).out)["waiting"]
    shown = cli.run("jobs", "show", job_id).out
    assert re.search(rf"^waiting: {re.escape(WHY)}", shown, re.MULTILINE), shown
    code, waited = in_a_terminal(cli, "wait", "--timeout", "2", job_id)
    assert code == 7 and WHY in waited, waited
    # Polish: `server status` shows the workers and each queue.
    fleet = cli.run("--url", server.url, "server", "status")
    assert fleet.code == 0, fleet.err
    assert "workers: none live" in fleet.out and "queue cpu: 1 pending, 0 processing" in fleet.out
    proc = workers.start(fake_seconds=0.2)
    assert cli.run("wait", "--timeout", "60", job_id).code == 0
    assert "waiting" not in json.loads(cli.run("status", "--json", job_id).out)
    fleet = cli.run("--url", server.url, "server", "status").out
    assert "workers: 1 live" in fleet and f"-{proc.pid}\tqueues cpu\tcpu\tidle" in fleet, fleet
    # Polish: an idle worker logs no line a second about its periodic tasks; job lines stay.
    time.sleep(2)  # retry_stalled runs every second: it would have logged by now
    logs = workers.logs()
    assert "whispercli.transcribe" in logs and f"job {job_id}: attempt 1" in logs
    periodic = [x for x in logs.splitlines() if "retry_stalled" in x or "retention_sweep" in x]
    noisy = [line for line in periodic if "Registering task" not in line]  # once, at start
    assert len(periodic) == 2 and noisy == [], noisy[:5]
