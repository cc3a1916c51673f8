"""The PostgreSQL mode's workers as ``/v1/health`` shows them, and why a job still waits.

Each worker keeps one row of ``whispercli_workers`` (host, queues, device, models, the jobs it
runs and how many it can run at once) and refreshes its ``heartbeat`` every
``ServerSettings.heartbeat_seconds``; a row whose heartbeat is older than ``stalled_after`` is a
dead worker and is not listed (the retention task deletes it). Queue depth comes from
Procrastinate's own jobs table.
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
    current_jobs: list[str]
    capacity: int
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
    def beat(self, worker: Heartbeat) -> None:
        """Insert or refresh ``worker``'s row."""
        self._execute(
            "INSERT INTO whispercli_workers (id, host, pid, queues, device, models, current_jobs,"
            f" capacity, started_at, heartbeat) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {_NOW},"
            f" {_NOW}) ON CONFLICT (id) DO UPDATE SET current_jobs = EXCLUDED.current_jobs,"
            " models = EXCLUDED.models, heartbeat = EXCLUDED.heartbeat",
            (worker.worker_id, socket.gethostname(), os.getpid(), worker.queues, worker.device,
             worker.models, worker.current_jobs, worker.capacity),
        )  # fmt: skip

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
            "SELECT id, host, queues, device, models, current_jobs, capacity,"
            f" {_NOW} - heartbeat AS age"
            f" FROM whispercli_workers WHERE heartbeat > {_NOW} - %s ORDER BY host, id",
            (self.stalled_after,),
        )
        return [
            WorkerInfo(
                **{k: v for k, v in r.items() if k != "age"}, heartbeat_age=round(r["age"], 2)
            )
            for r in rows
        ]

    def less_busy_peer(self, worker_id: str, queues: list[str], running: int) -> bool:
        """Whether another live worker serving one of ``queues`` runs fewer than ``running``
        jobs (and has room for one more)."""
        rows = self._execute(
            "SELECT 1 FROM whispercli_workers WHERE id <> %s AND queues && %s"
            f" AND heartbeat > {_NOW} - %s AND cardinality(current_jobs) < %s"
            " AND cardinality(current_jobs) < capacity LIMIT 1",
            (worker_id, queues, self.stalled_after, running),
        )
        return bool(rows)

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
        if all(len(w.current_jobs) >= w.capacity for w in serving):
            if len(serving) == 1:
                return f"the only worker of the {queue!r} queue is busy (its engine is full)"
            return f"all {len(serving)} workers of the {queue!r} queue are busy"
        return None


class Heartbeat:
    """A worker's thread that refreshes its row every ``interval`` seconds until stopped."""

    def __init__(self, fleet: Fleet, worker_id: str, queues: list[str], device: str,
                 models: list[str], interval: float, capacity: int = 1) -> None:  # fmt: skip
        self.fleet, self.worker_id, self.queues = fleet, worker_id, queues
        self.device, self.models, self.interval = device, models, interval
        self.capacity = capacity
        """Jobs the worker runs at once (its engine's ``engine_jobs``)."""
        self.current_jobs: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fleet-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def set_jobs(self, job_ids: list[str]) -> None:
        """Record the jobs this worker runs now, not at the next beat (if they changed)."""
        if job_ids != self.current_jobs:
            self.current_jobs = job_ids
            self._beat()

    def _beat(self) -> None:
        with contextlib.suppress(StoreUnavailable):  # the worker's loop reconnects
            self.fleet.beat(self)

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
