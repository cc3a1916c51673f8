"""Jobs and uploads in SQLite (stdlib ``sqlite3``, WAL), plus the files they own on disk.

The server process is the only writer; its request handlers and its supervisor thread share
one connection behind a lock, and every statement is short, so a poll never waits long.
Every file name on disk is chosen here (random ids), never taken from a request.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whispercli.fsutil import atomic_write_text
from whispercli.protocol import Status

QUEUED = (Status.ACCEPTED.value, Status.PENDING.value)
FINISHED = (Status.SUCCESS.value, Status.FAILED.value, Status.CANCELLED.value)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    extension TEXT,
    created_at REAL NOT NULL,
    size INTEGER
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    upload_id TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    attempts INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    segments TEXT,
    has_result INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    accepted_at REAL NOT NULL,
    started_at REAL,
    completed_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, accepted_at);
"""


@dataclass(frozen=True)
class Upload:
    id: str
    extension: str | None
    created_at: float
    size: int | None


@dataclass(frozen=True)
class Job:
    id: str
    status: str
    model: str
    params: dict[str, Any]
    upload_id: str
    attempts: int
    progress: float
    segments: list[dict[str, Any]]
    has_result: bool
    error: str | None
    cancel_requested: bool
    accepted_at: float
    started_at: float | None
    completed_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            status=row["status"],
            model=row["model"],
            params=json.loads(row["params"]),
            upload_id=row["upload_id"],
            attempts=row["attempts"],
            progress=row["progress"],
            segments=json.loads(row["segments"]) if row["segments"] else [],
            has_result=bool(row["has_result"]),
            error=row["error"],
            cancel_requested=bool(row["cancel_requested"]),
            accepted_at=row["accepted_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
        )


def new_id() -> str:
    return secrets.token_hex(16)


class Store:
    def __init__(self, data_dir: Path) -> None:
        self.uploads_dir = data_dir / "uploads"
        self.results_dir = data_dir / "results"
        for folder in (data_dir, self.uploads_dir, self.results_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)  # the database holds transcripts and prompts
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "jobs.db", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _one(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._db.execute(sql, args).fetchone()
            return row

    # -- files ---------------------------------------------------------------------------
    def upload_path(self, upload_id: str) -> Path:
        return self.uploads_dir / upload_id

    def result_path(self, job_id: str) -> Path:
        return self.results_dir / f"{job_id}.json"

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self.result_path(job_id).read_text("utf-8"))
        except FileNotFoundError:
            return None
        return data

    # -- uploads ---------------------------------------------------------------------------
    def create_upload(self, extension: str | None) -> str:
        upload_id = new_id()
        with self._tx() as db:
            db.execute(
                "INSERT INTO uploads (id, extension, created_at) VALUES (?, ?, ?)",
                (upload_id, extension, time.time()),
            )
        return upload_id

    def get_upload(self, upload_id: str) -> Upload | None:
        row = self._one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return Upload(row["id"], row["extension"], row["created_at"], row["size"]) if row else None

    def mark_uploaded(self, upload_id: str, size: int) -> None:
        with self._tx() as db:
            db.execute("UPDATE uploads SET size = ? WHERE id = ?", (size, upload_id))

    # -- jobs ------------------------------------------------------------------------------
    def job_by_key(self, idempotency_key: str) -> Job | None:
        row = self._one("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,))
        return Job.from_row(row) if row else None

    def get_job(self, job_id: str) -> Job | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job.from_row(row) if row else None

    def create_job(
        self, model: str, params: dict[str, Any], upload_id: str, idempotency_key: str | None
    ) -> tuple[Job, bool]:
        """Insert a pending job; with a known idempotency key return that job instead."""
        with self._tx() as db:
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return Job.from_row(row), False
            job_id = new_id()
            db.execute(
                "INSERT INTO jobs (id, status, model, params, upload_id, idempotency_key,"
                " accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    Status.PENDING.value,
                    model,
                    json.dumps(params),
                    upload_id,
                    idempotency_key,
                    time.time(),
                ),
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row), True

    def list_jobs(self, status: str | None, limit: int) -> list[Job]:
        sql = "SELECT * FROM jobs"
        args: tuple[Any, ...] = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        sql += " ORDER BY accepted_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [Job.from_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    def claim_next(self) -> Job | None:
        """Move the oldest queued job to ``processing`` (one more attempt) and return it."""
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status IN (?, ?) ORDER BY accepted_at LIMIT 1", QUEUED
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ?,"
                " progress = 0, segments = NULL WHERE id = ?",
                (Status.PROCESSING.value, time.time(), row["id"]),
            )
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return Job.from_row(claimed)

    def set_progress(self, job_id: str, progress: float, segments: list[dict[str, Any]]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, segments = ? WHERE id = ? AND status = ?",
                (progress, json.dumps(segments), job_id, Status.PROCESSING.value),
            )

    def finish(
        self,
        job_id: str,
        status: Status,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record a terminal status (and the result file, written first, atomically)."""
        if result is not None:
            atomic_write_text(self.result_path(job_id), json.dumps(result))
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, has_result = ?, error = ?, completed_at = ?,"
                " progress = CASE WHEN ? THEN 1 ELSE progress END, segments = NULL"
                " WHERE id = ?",
                (
                    status.value,
                    int(result is not None),
                    error,
                    time.time(),
                    int(status is Status.SUCCESS),
                    job_id,
                ),
            )

    def requeue_or_fail(self, job_id: str, reason: str, max_attempts: int) -> str:
        """After a crash mid-job: queue it again, or fail it once attempts are used up."""
        with self._tx() as db:
            row = db.execute("SELECT attempts, cancel_requested FROM jobs WHERE id = ?", (job_id,))
            found = row.fetchone()
            if found is None:
                return "gone"
            if found["cancel_requested"]:
                status, error = Status.CANCELLED.value, None
            elif found["attempts"] >= max_attempts:
                status = Status.FAILED.value
                error = f"{reason}; gave up after {found['attempts']} attempts"
            else:
                status, error = Status.PENDING.value, None
            done = time.time() if status != Status.PENDING.value else None
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, completed_at = ?, progress = 0,"
                " segments = NULL WHERE id = ?",
                (status, error, done, job_id),
            )
        return status

    def release(self, job_id: str) -> None:
        """Put a processing job back in the queue without counting the attempt (clean stop)."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, attempts = MAX(attempts - 1, 0), progress = 0,"
                " segments = NULL WHERE id = ? AND status = ?",
                (Status.PENDING.value, job_id, Status.PROCESSING.value),
            )

    def recover(self, max_attempts: int) -> list[str]:
        """On start: jobs a crash left ``processing`` go back to the queue (bounded)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status = ?", (Status.PROCESSING.value,)
            ).fetchall()
        reason = "the server stopped while this job was processing"
        return [self.requeue_or_fail(r["id"], reason, max_attempts) for r in rows]

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job now; flag a processing one for the supervisor."""
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, completed_at = ? WHERE id = ? AND status IN (?, ?)",
                (Status.CANCELLED.value, time.time(), job_id, *QUEUED),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = ?",
                (job_id, Status.PROCESSING.value),
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def delete_job(self, job_id: str) -> bool:
        """Delete a job, its result file, and its upload unless another job still uses it."""
        with self._tx() as db:
            row = db.execute("SELECT upload_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            shared = db.execute(
                "SELECT 1 FROM jobs WHERE upload_id = ? LIMIT 1", (row["upload_id"],)
            ).fetchone()
            if shared is None:
                db.execute("DELETE FROM uploads WHERE id = ?", (row["upload_id"],))
        self.result_path(job_id).unlink(missing_ok=True)
        if shared is None:
            self.upload_path(row["upload_id"]).unlink(missing_ok=True)
        return True

    def sweep(self, retention: float) -> int:
        """Delete jobs that ended more than ``retention`` seconds ago, with their files, and
        uploads that old which no job uses."""
        cutoff = time.time() - retention
        with self._lock:
            old_jobs = self._db.execute(
                "SELECT id FROM jobs WHERE status IN (?, ?, ?) AND completed_at < ?",
                (*FINISHED, cutoff),
            ).fetchall()
        removed = sum(self.delete_job(r["id"]) for r in old_jobs)
        with self._tx() as db:
            orphans = db.execute(
                "SELECT id FROM uploads WHERE created_at < ? AND id NOT IN"
                " (SELECT upload_id FROM jobs)",
                (cutoff,),
            ).fetchall()
            db.executemany("DELETE FROM uploads WHERE id = ?", [(r["id"],) for r in orphans])
        for r in orphans:
            self.upload_path(r["id"]).unlink(missing_ok=True)
        return removed + len(orphans)
