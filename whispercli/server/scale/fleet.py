"""The PostgreSQL mode's workers as ``/v1/health`` shows them, and why a job still waits.

Each worker keeps one row of ``whispercli_workers`` (host, queues, device, models, the job it
runs) and refreshes its ``heartbeat`` every ``ServerSettings.heartbeat_seconds``;
a row whose heartbeat is older than ``stalled_after`` is a dead worker and is not listed (the
retention task deletes it). Queue depth comes from Procrastinate's own jobs table.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from psycopg_pool import ConnectionPool

from whispercli.server.storage.postgres.pool import connection_errors
from whispercli.server.storage.store import StoreUnavailable

_NOW = "extract(epoch from clock_timestamp())"


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    queues: list[str]
    device: str
    models: list[str]
    current_job: str | None
    heartbeat_age: float


class Fleet:
    """Reads and writes the worker rows through a store's connection pool."""

    def __init__(self, pool: ConnectionPool[Any], stalled_after: float, task: str) -> None:
        """``task``: the transcription task's name in Procrastinate's jobs table."""
        self.pool = pool
        self.stalled_after = stalled_after
        self.task = task

    def _execute(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with connection_errors(), self.pool.connection() as conn:
            cursor = conn.execute(sql, args)
            return cursor.fetchall() if cursor.description else []

    # -- a worker's own row ----------------------------------------------------------------
    def beat(self, worker_id: str, queues: list[str], device: str, models: list[str],
             current_job: str | None) -> None:  # fmt: skip
        self._execute(
            "INSERT INTO whispercli_workers (id, host, pid, queues, device, models, current_job,"
            f" started_at, heartbeat) VALUES (%s, %s, %s, %s, %s, %s, %s, {_NOW}, {_NOW})"
            " ON CONFLICT (id) DO UPDATE SET current_job = EXCLUDED.current_job,"
            " models = EXCLUDED.models, heartbeat = EXCLUDED.heartbeat",
            (worker_id, socket.gethostname(), os.getpid(), queues, device, models, current_job),
        )

    def leave(self, worker_id: str) -> None:
        self._execute("DELETE FROM whispercli_workers WHERE id = %s", (worker_id,))

    def prune(self, older_than: float) -> int:
        """Delete the rows of workers dead for ``older_than`` seconds; how many went."""
        with connection_errors(), self.pool.connection() as conn:
            cursor = conn.execute(
                f"DELETE FROM whispercli_workers WHERE heartbeat < {_NOW} - %s", (older_than,)
            )
            return cursor.rowcount

    # -- what the API servers read ---------------------------------------------------------
    def live(self) -> list[WorkerInfo]:
        rows = self._execute(
            f"SELECT id, host, queues, device, models, current_job, {_NOW} - heartbeat AS age"
            f" FROM whispercli_workers WHERE heartbeat > {_NOW} - %s ORDER BY host, id",
            (self.stalled_after,),
        )
        return [
            WorkerInfo(
                **{k: v for k, v in r.items() if k != "age"}, heartbeat_age=round(r["age"], 2)
            )
            for r in rows
        ]

    def queue_depths(self) -> dict[str, dict[str, int]]:
        """``{queue: {"pending": n, "processing": n}}`` of the transcription tasks."""
        rows = self._execute(
            "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs"
            " WHERE task_name = %s AND status IN ('todo', 'doing') GROUP BY 1, 2",
            (self.task,),
        )
        depths: dict[str, dict[str, int]] = {}
        for row in rows:
            queue, status, count = row["queue_name"], row["status"], row["count"]
            entry = depths.setdefault(queue, {"pending": 0, "processing": 0})
            entry["pending" if status == "todo" else "processing"] = count
        return depths

    def waiting(self, job_id: str) -> str | None:
        """Why a pending job has not started, or None when it is about to."""
        rows = self._execute(
            "SELECT queue_name FROM procrastinate_jobs WHERE task_name = %s"
            " AND args->>'job_id' = %s ORDER BY id DESC LIMIT 1",
            (self.task, job_id),
        )
        if not rows:
            return None
        queue = rows[0]["queue_name"]
        serving = [w for w in self.live() if queue in w.queues]
        if not serving:
            return f"no live worker serves the {queue!r} queue; the job starts when one does"
        if all(w.current_job for w in serving):
            return f"all {len(serving)} workers of the {queue!r} queue are busy"
        return None


class Heartbeat:
    """A worker's thread that refreshes its row every ``interval`` seconds until stopped."""

    def __init__(self, fleet: Fleet, worker_id: str, queues: list[str], device: str,
                 models: list[str], interval: float) -> None:  # fmt: skip
        self.fleet, self.worker_id, self.queues = fleet, worker_id, queues
        self.device, self.models, self.interval = device, models, interval
        self.current_job: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleet-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set_job(self, job_id: str | None) -> None:
        """Record the job this worker runs (None: idle) now, not at the next beat."""
        self.current_job = job_id
        self._beat()

    def _beat(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # the worker's loop reconnects
            self.fleet.beat(self.worker_id, self.queues, self.device, self.models, self.current_job)

    def _loop(self) -> None:
        while True:
            self._beat()
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(StoreUnavailable):  # else the row ages out
            self.fleet.leave(self.worker_id)
