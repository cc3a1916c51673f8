"""PostgreSQL-mode queue workers for tests: ``whispercli worker run`` processes on one
database, with the real model or the fake engine; ``stop_all`` ends them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from local_server import REPO

from whispercli.server.settings import FAKE_ENGINE_ENV

WORKER_RUN = [sys.executable, "-m", "whispercli", "worker", "run"]


class Workers:
    def __init__(self, root: Path, dsn: str) -> None:
        self.root, self.dsn = root, dsn
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(
        self, fake_seconds: float | None = None, queues: str = "cpu", *extra: str
    ) -> subprocess.Popen[bytes]:
        """A worker with the real model, or the fake engine taking ``fake_seconds`` a job."""
        n = len(self.procs)
        data = self.root / f"worker-{n}"
        data.mkdir(parents=True)
        log = self.root / f"worker-{n}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*WORKER_RUN, "--database", self.dsn, "--queues", queues, *extra],
                env={
                    **os.environ,
                    "WHISPERCLI_DATA_DIR": str(data),
                    "HF_HUB_OFFLINE": "1",
                    FAKE_ENGINE_ENV: "" if fake_seconds is None else str(fake_seconds),
                },
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
