"""The embedded default's :class:`~.store.Store`: SQLite (stdlib, WAL) in the data dir.

The server process is the only writer; its request handlers and its runner thread share one
connection behind a lock, and every statement is short, so a poll never waits long. Results
are JSON files beside the database (written atomically before the row says so).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from whispercli.fsutil import atomic_write_text
from whispercli.protocol import QUEUED_STATUSES, TERMINAL_STATUSES, Status
from whispercli.server.storage.deliveries import (
    LEASE_SECONDS,
    Delivery,
    delivery_from_row,
    delivery_state,
)
from whispercli.server.storage.store import (
    TAKEN_OVER_REASON,
    JobRecord,
    Swept,
    Upload,
    gave_up,
    new_id,
)

_QUEUED = tuple(sorted(QUEUED_STATUSES))
_FINISHED = tuple(sorted(TERMINAL_STATUSES))
_PROCESSING = Status.PROCESSING.value

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
CREATE INDEX IF NOT EXISTS jobs_upload ON jobs (upload_id);
CREATE TABLE IF NOT EXISTS job_meta (
    job_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    url TEXT NOT NULL,
    kind TEXT NOT NULL,
    base_url TEXT NOT NULL,
    extra TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'waiting',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    body BLOB,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (state, next_at);
"""


def _job(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
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


class SqliteStore:
    def __init__(self, data_dir: Path) -> None:
        self.results_dir = data_dir / "results"
        for folder in (data_dir, self.results_dir):
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

    def _result_path(self, job_id: str) -> Path:
        return self.results_dir / f"{job_id}.json"

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
        row = self._one(
            "SELECT *, EXISTS (SELECT 1 FROM jobs WHERE upload_id = uploads.id) AS used"
            " FROM uploads WHERE id = ?",
            (upload_id,),
        )
        if row is None:
            return None
        used = bool(row["used"])
        return Upload(row["id"], row["extension"], row["created_at"], row["size"], used)

    def commit_upload(self, upload_id: str, size: int, publish: Callable[[], None]) -> bool:
        with self._tx() as db:  # BEGIN IMMEDIATE: create_job waits for the commit
            if db.execute("SELECT 1 FROM jobs WHERE upload_id = ?", (upload_id,)).fetchone():
                return False
            if db.execute("UPDATE uploads SET size = ? WHERE id = ?", (size, upload_id)).rowcount:
                publish()
                return True
            return False

    # -- jobs ------------------------------------------------------------------------------
    def job_by_key(self, idempotency_key: str) -> JobRecord | None:
        row = self._one("SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,))
        return _job(row) if row else None

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row else None

    def create_job(
        self, model: str, params: dict[str, Any], upload_id: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        with self._tx() as db:
            if idempotency_key is not None:
                row = db.execute(
                    "SELECT * FROM jobs WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    return _job(row), False
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
        return _job(row), True

    def list_jobs(self, status: str | None, limit: int) -> list[JobRecord]:
        sql = "SELECT * FROM jobs"
        args: tuple[Any, ...] = ()
        if status:
            sql += " WHERE status = ?"
            args = (status,)
        sql += " ORDER BY accepted_at DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {r[0]: r[1] for r in rows}

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._result_path(job_id).read_text("utf-8"))
        except FileNotFoundError:
            return None
        return data

    def cancel(self, job_id: str) -> JobRecord | None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, completed_at = ? WHERE id = ? AND status IN (?, ?)",
                (Status.CANCELLED.value, time.time(), job_id, *_QUEUED),
            )
            db.execute(
                "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = ?",
                (job_id, _PROCESSING),
            )
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def delete_job(self, job_id: str) -> list[str] | None:
        with self._tx() as db:
            row = db.execute("SELECT upload_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("DELETE FROM job_meta WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM deliveries WHERE job_id = ?", (job_id,))
            upload_id = row["upload_id"]
            shared = db.execute(
                "SELECT 1 FROM jobs WHERE upload_id = ? LIMIT 1", (upload_id,)
            ).fetchone()
            if shared is None:
                db.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))
        self._result_path(job_id).unlink(missing_ok=True)
        return [] if shared is not None else [upload_id]

    def set_meta(self, job_id: str, data: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO job_meta (job_id, data) VALUES (?, ?)",
                (job_id, json.dumps(data)),
            )

    def get_meta(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT data FROM job_meta WHERE job_id = ?", (job_id,))
        return json.loads(row["data"]) if row else None

    # -- webhook deliveries ------------------------------------------------------------------
    def add_delivery(
        self,
        job_id: str,
        message_id: str,
        url: str,
        kind: str,
        base_url: str,
        extra: dict[str, Any],
    ) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO deliveries (job_id, message_id, url, kind, base_url,"
                " extra) VALUES (?, ?, ?, ?, ?, ?)",
                (job_id, message_id, url, kind, base_url, json.dumps(extra)),
            )

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        with self._tx() as db:
            rows = db.execute(
                "SELECT d.*, COALESCE(j.completed_at, ?) AS ended_at FROM deliveries d"
                " JOIN jobs j ON j.id = d.job_id WHERE d.state = 'waiting' AND d.next_at <= ?"
                " AND j.status IN (?, ?, ?) ORDER BY d.next_at LIMIT ?",
                (now, now, *_FINISHED, limit),
            ).fetchall()
            db.executemany(
                "UPDATE deliveries SET next_at = ? WHERE job_id = ?",
                [(now + LEASE_SECONDS, r["job_id"]) for r in rows],
            )
        return [delivery_from_row(r, json.loads(r["extra"])) for r in rows]

    def record_attempt(
        self, job_id: str, body: bytes, *, delivered: bool, next_at: float | None, error: str | None
    ) -> None:
        state = delivery_state(delivered, next_at)
        with self._tx() as db:
            db.execute(
                "UPDATE deliveries SET attempts = attempts + 1, body = COALESCE(body, ?),"
                " state = ?, next_at = COALESCE(?, next_at), last_error = ? WHERE job_id = ?",
                (body, state, next_at, error, job_id),
            )

    # -- the worker side ---------------------------------------------------------------------
    def claim_next(self) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status IN (?, ?) ORDER BY accepted_at LIMIT 1", _QUEUED
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ?,"
                " progress = 0, segments = NULL WHERE id = ?",
                (_PROCESSING, time.time(), row["id"]),
            )
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        return _job(claimed)

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
        with self._tx() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["status"] not in (*_QUEUED, _PROCESSING):
                return None
            if row["cancel_requested"] or row["attempts"] >= max_attempts:
                cancelled = bool(row["cancel_requested"])
                db.execute(
                    "UPDATE jobs SET status = ?, error = ?, completed_at = ?, progress = 0,"
                    " segments = NULL WHERE id = ?",
                    (
                        Status.CANCELLED.value if cancelled else Status.FAILED.value,
                        None if cancelled else gave_up(TAKEN_OVER_REASON, row["attempts"]),
                        time.time(),
                        job_id,
                    ),
                )
                return None
            db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ?,"
                " progress = 0, segments = NULL WHERE id = ?",
                (_PROCESSING, time.time(), job_id),
            )
            claimed = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(claimed)

    def set_progress(
        self, job_id: str, attempt: int, progress: float, segments: list[dict[str, Any]]
    ) -> bool:
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE jobs SET progress = ?, segments = ?"
                " WHERE id = ? AND status = ? AND attempts = ?",
                (progress, json.dumps(segments), job_id, _PROCESSING, attempt),
            )
        return cursor.rowcount == 1

    def finish(
        self,
        job_id: str,
        attempt: int,
        status: Status,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        # The result file is written first, atomically, and only by the attempt that runs:
        # a late write of an older attempt must not replace the file either.
        with self._tx() as db:
            running = db.execute(
                "SELECT 1 FROM jobs WHERE id = ? AND status = ? AND attempts = ?",
                (job_id, _PROCESSING, attempt),
            ).fetchone()
            if running is None:
                return False
            if result is not None:
                atomic_write_text(self._result_path(job_id), json.dumps(result))
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
        return True

    def requeue_or_fail(self, job_id: str, attempt: int, reason: str, max_attempts: int) -> str:
        with self._tx() as db:
            found = db.execute(
                "SELECT attempts, cancel_requested FROM jobs"
                " WHERE id = ? AND status = ? AND attempts = ?",
                (job_id, _PROCESSING, attempt),
            ).fetchone()
            if found is None:
                return "gone"
            if found["cancel_requested"]:
                status, error = Status.CANCELLED.value, None
            elif found["attempts"] >= max_attempts:
                status = Status.FAILED.value
                error = gave_up(reason, found["attempts"])
            else:
                status, error = Status.PENDING.value, None
            done = time.time() if status != Status.PENDING.value else None
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, completed_at = ?, progress = 0,"
                " segments = NULL WHERE id = ?",
                (status, error, done, job_id),
            )
        return status

    def release(self, job_id: str, attempt: int) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE jobs SET status = ?, attempts = MAX(attempts - 1, 0), progress = 0,"
                " segments = NULL WHERE id = ? AND status = ? AND attempts = ?",
                (Status.PENDING.value, job_id, _PROCESSING, attempt),
            )

    def recover(self, max_attempts: int) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, attempts FROM jobs WHERE status = ?", (_PROCESSING,)
            ).fetchall()
        reason = "the server stopped while this job was processing"
        return [self.requeue_or_fail(r["id"], r["attempts"], reason, max_attempts) for r in rows]

    # -- retention ---------------------------------------------------------------------------
    def sweep(self, retention: float) -> Swept:
        cutoff = time.time() - retention
        with self._lock:
            old_jobs = self._db.execute(
                "SELECT id FROM jobs WHERE status IN (?, ?, ?) AND completed_at < ?",
                (*_FINISHED, cutoff),
            ).fetchall()
        unused: list[str] = []
        removed = 0
        for row in old_jobs:
            freed = self.delete_job(row["id"])
            if freed is not None:
                removed += 1
                unused.extend(freed)
        with self._tx() as db:
            orphans = db.execute(
                "SELECT id FROM uploads WHERE created_at < ? AND id NOT IN"
                " (SELECT upload_id FROM jobs)",
                (cutoff,),
            ).fetchall()
            db.executemany("DELETE FROM uploads WHERE id = ?", [(r["id"],) for r in orphans])
        return Swept(removed, unused + [r["id"] for r in orphans])
