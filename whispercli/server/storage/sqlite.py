"""The embedded default's store: SQLite (stdlib, WAL) in the data dir, under the one
:class:`~.store.Store`.

The server process is the only writer; its request handlers and its runner thread share one
connection behind a lock, and every statement is short, so a poll never waits long. A
transaction is ``BEGIN IMMEDIATE``: it holds the database from its first statement, so two
claims never interleave (the dialect needs no row locks). Results are JSON files beside the
database, written atomically inside the transaction that finishes the job.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from whispercli.fsutil import atomic_write_text
from whispercli.server.storage.sql import Dialect, Session
from whispercli.server.storage.store import Store

SQLITE = Dialect(
    tables="",
    now="unix_now()",  # time.time(), registered on the connection: microseconds, not julianday's ms
    lock="",
    skip_locked="",
    has_result="has_result",
    pyformat=False,
    to_json=json.dumps,
    from_json=json.loads,
)

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


class SqliteConnector:
    dialect = SQLITE

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
        self._db.create_function("unix_now", 0, lambda: time.time())
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._lock:
            yield Session(self._db, SQLITE)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield Session(self._db, SQLITE)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _result_path(self, job_id: str) -> Path:
        return self.results_dir / f"{job_id}.json"

    def save_result(self, tx: Session, job_id: str, result: dict[str, Any]) -> None:
        atomic_write_text(self._result_path(job_id), json.dumps(result))
        tx.run("UPDATE jobs SET has_result = 1 WHERE id = :id", id=job_id)

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._result_path(job_id).read_text("utf-8"))
        except FileNotFoundError:
            return None
        return data

    def drop_result(self, job_id: str) -> None:
        self._result_path(job_id).unlink(missing_ok=True)


class SqliteStore(Store):
    """The job store on SQLite in ``data_dir`` (``jobs.db``, ``results/``)."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(SqliteConnector(data_dir))
