"""The PostgreSQL mode end to end: `server run --database` (no engine) and `server worker`
processes (the real model) that take jobs from the queue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import REPO, SAMPLE_TXT, ServerFactory
from pg_cluster import PostgresCluster
from server_helpers import poll, submit, upload, wait_done

from whispercli.server.postgres_store import migrate


class Workers:
    def __init__(self, root: Path, dsn: str) -> None:
        self.root, self.dsn = root, dsn
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs)
        data = self.root / f"worker-{n}"
        data.mkdir(parents=True)
        log = self.root / f"worker-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "whispercli", "server", "worker", "--database", self.dsn],
                env={**os.environ, "WHISPERCLI_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        self.procs.append((proc, log))
        return proc

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.procs)

    def stop_all(self) -> list[int | None]:
        codes = []
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            codes.append(proc.returncode)
        return codes


@pytest.fixture
def workers(postgres: PostgresCluster, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(tmp_path / "workers", postgres.new_database(migrate))
    yield pool
    pool.stop_all()


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
