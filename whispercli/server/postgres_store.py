"""The PostgreSQL :class:`~whispercli.server.store.Store` (psycopg 3, a connection pool).

Several API servers and workers share one database: every statement is safe to race
(``FOR UPDATE SKIP LOCKED`` claims, a unique idempotency key, writes fenced by attempt), and
timestamps come from the database's clock, not the callers'. :func:`migrate` installs the
schema (idempotent, under an advisory lock); a trigger NOTIFYs ``whispercli_jobs`` with the
job id on every change, which :mod:`whispercli.server.postgres_notify` listens to.

Why psycopg 3 (not asyncpg): Procrastinate 3 runs on psycopg 3, so the mode has one driver;
it has a blocking API (our Store is blocking and runs in threads) and an async one (LISTEN),
and a pool that reconnects by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout

from whispercli.protocol import QUEUED_STATUSES, TERMINAL_STATUSES, Status
from whispercli.server.store import (
    TAKEN_OVER_REASON,
    Job,
    StoreUnavailable,
    Swept,
    Upload,
    gave_up,
    new_id,
)
from whispercli.server.webhooks.outbox import (
    LEASE_SECONDS,
    Delivery,
    delivery_from_row,
    delivery_state,
)

CHANNEL = "whispercli_jobs"
_QUEUED = sorted(QUEUED_STATUSES)
_FINISHED = sorted(TERMINAL_STATUSES)
_PROCESSING = Status.PROCESSING.value
_NOW = "extract(epoch from clock_timestamp())"

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS whispercli_uploads (
    id text PRIMARY KEY,
    extension text,
    created_at double precision NOT NULL,
    size bigint
);
CREATE TABLE IF NOT EXISTS whispercli_jobs (
    id text PRIMARY KEY,
    status text NOT NULL,
    model text NOT NULL,
    params jsonb NOT NULL,
    upload_id text NOT NULL,
    idempotency_key text UNIQUE,
    attempts integer NOT NULL DEFAULT 0,
    progress double precision NOT NULL DEFAULT 0,
    segments jsonb,
    result jsonb,
    error text,
    cancel_requested boolean NOT NULL DEFAULT false,
    accepted_at double precision NOT NULL,
    started_at double precision,
    completed_at double precision
);
CREATE INDEX IF NOT EXISTS whispercli_jobs_status ON whispercli_jobs (status, accepted_at);
CREATE INDEX IF NOT EXISTS whispercli_jobs_upload ON whispercli_jobs (upload_id);
CREATE TABLE IF NOT EXISTS whispercli_blobs (
    blob_id text PRIMARY KEY,
    version text NOT NULL,
    chunks integer NOT NULL,
    size bigint NOT NULL,
    sha256 text NOT NULL
);
CREATE TABLE IF NOT EXISTS whispercli_blob_chunks (
    blob_id text NOT NULL,
    version text NOT NULL,
    seq integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (blob_id, version, seq)
);
CREATE TABLE IF NOT EXISTS whispercli_job_meta (
    job_id text PRIMARY KEY REFERENCES whispercli_jobs (id) ON DELETE CASCADE,
    data jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS whispercli_deliveries (
    job_id text PRIMARY KEY REFERENCES whispercli_jobs (id) ON DELETE CASCADE,
    message_id text NOT NULL,
    url text NOT NULL,
    kind text NOT NULL,
    base_url text NOT NULL,
    extra jsonb NOT NULL,
    state text NOT NULL DEFAULT 'waiting',
    attempts integer NOT NULL DEFAULT 0,
    next_at double precision NOT NULL DEFAULT 0,
    body bytea,
    last_error text
);
CREATE INDEX IF NOT EXISTS whispercli_deliveries_due ON whispercli_deliveries (state, next_at);
-- the workers /v1/health lists (server/fleet.py)
CREATE TABLE IF NOT EXISTS whispercli_workers (
    id text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    device text NOT NULL,
    models text[] NOT NULL,
    current_job text,
    started_at double precision NOT NULL,
    heartbeat double precision NOT NULL
);
-- audio is compressed already: store the chunks out of line without trying to compress them
ALTER TABLE whispercli_blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE OR REPLACE FUNCTION whispercli_notify_job() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', COALESCE(NEW.id, OLD.id));
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS whispercli_jobs_notify ON whispercli_jobs;
CREATE TRIGGER whispercli_jobs_notify AFTER INSERT OR UPDATE OR DELETE ON whispercli_jobs
    FOR EACH ROW EXECUTE FUNCTION whispercli_notify_job();
"""
_MIGRATE_LOCK = 0x77686973  # pg_advisory_lock key: two servers starting at once migrate once


def migrate(dsn: str, *, queue: bool = True) -> None:
    """Install or update our schema, and Procrastinate's unless ``queue`` is False; safe to run
    twice and from racing processes."""
    with connection_errors(), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            with conn.transaction():
                conn.execute(SCHEMA)
                if queue:
                    found = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
                    if found is None or found[0] is None:
                        from whispercli.server.queue import procrastinate_schema

                        conn.execute(procrastinate_schema())
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))


@contextlib.contextmanager
def connection_errors() -> Iterator[None]:
    """Connection trouble becomes StoreUnavailable (whose message names no DSN)."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"the database is unavailable: {first}") from None


def open_pool(dsn: str, max_connections: int) -> ConnectionPool:
    """An open pool of autocommit connections giving dict rows (StoreUnavailable if the
    database cannot be reached)."""
    pool = ConnectionPool(
        dsn,
        min_size=1,
        max_size=max_connections,
        kwargs={"autocommit": True, "row_factory": dict_row},
        timeout=5,
        check=ConnectionPool.check_connection,  # no dead connection after a restart
        open=False,
    )
    with connection_errors():
        pool.open(wait=True, timeout=10)
    return pool


class Pooled:
    """Holds a pool from :func:`open_pool`: ``close`` closes it, ``_conn`` lends a connection
    (connection trouble as StoreUnavailable)."""

    pool: ConnectionPool

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with connection_errors(), self.pool.connection() as conn:
            yield conn


def _job(row: dict[str, Any]) -> Job:
    return Job(
        id=row["id"],
        status=row["status"],
        model=row["model"],
        params=row["params"],
        upload_id=row["upload_id"],
        attempts=row["attempts"],
        progress=row["progress"],
        segments=row["segments"] or [],
        has_result=row["has_result"],
        error=row["error"],
        cancel_requested=row["cancel_requested"],
        accepted_at=row["accepted_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
    )


_JOB_COLUMNS = (
    "id, status, model, params, upload_id, attempts, progress, segments,"
    " result IS NOT NULL AS has_result, error, cancel_requested, accepted_at, started_at,"
    " completed_at"
)


class PostgresStore(Pooled):
    def __init__(self, dsn: str, *, max_connections: int = 8) -> None:
        self.pool = open_pool(dsn, max_connections)

    def _one(self, sql: str, args: tuple[Any, ...] | dict[str, Any] = ()) -> dict[str, Any] | None:
        with self._conn() as conn:
            row: dict[str, Any] | None = conn.execute(sql, args).fetchone()
            return row

    # -- uploads ---------------------------------------------------------------------------
    def create_upload(self, extension: str | None) -> str:
        upload_id = new_id()
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO whispercli_uploads (id, extension, created_at)"
                f" VALUES (%s, %s, {_NOW})",
                (upload_id, extension),
            )
        return upload_id

    def get_upload(self, upload_id: str) -> Upload | None:
        row = self._one(
            "SELECT *, EXISTS (SELECT 1 FROM whispercli_jobs j WHERE j.upload_id = u.id) AS used"
            " FROM whispercli_uploads u WHERE id = %s",
            (upload_id,),
        )
        if row is None:
            return None
        return Upload(row["id"], row["extension"], row["created_at"], row["size"], row["used"])

    def mark_uploaded(self, upload_id: str, size: int) -> None:
        with self._conn() as conn:
            conn.execute("UPDATE whispercli_uploads SET size = %s WHERE id = %s", (size, upload_id))

    # -- jobs ------------------------------------------------------------------------------
    def job_by_key(self, idempotency_key: str) -> Job | None:
        row = self._one(
            f"SELECT {_JOB_COLUMNS} FROM whispercli_jobs WHERE idempotency_key = %s",
            (idempotency_key,),
        )
        return _job(row) if row else None

    def get_job(self, job_id: str) -> Job | None:
        row = self._one(f"SELECT {_JOB_COLUMNS} FROM whispercli_jobs WHERE id = %s", (job_id,))
        return _job(row) if row else None

    def create_job(
        self, model: str, params: dict[str, Any], upload_id: str, idempotency_key: str | None
    ) -> tuple[Job, bool]:
        # The unique key decides between racing servers: the loser reads the winner's job.
        row = self._one(
            "INSERT INTO whispercli_jobs (id, status, model, params, upload_id, idempotency_key,"
            f" accepted_at) VALUES (%s, %s, %s, %s, %s, %s, {_NOW})"
            f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_JOB_COLUMNS}",
            (new_id(), Status.PENDING.value, model, Jsonb(params), upload_id, idempotency_key),
        )
        if row is not None:
            return _job(row), True
        assert idempotency_key is not None
        existing = self.job_by_key(idempotency_key)
        assert existing is not None
        return existing, False

    def list_jobs(self, status: str | None, limit: int) -> list[Job]:
        where = "WHERE status = %s" if status else ""
        args: tuple[Any, ...] = (status, limit) if status else (limit,)
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM whispercli_jobs {where}"
                " ORDER BY accepted_at DESC LIMIT %s",
                args,
            ).fetchall()
        return [_job(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT status, count(*) AS n FROM whispercli_jobs GROUP BY status"
            ).fetchall()
        return {r["status"]: r["n"] for r in rows}

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT result FROM whispercli_jobs WHERE id = %s", (job_id,))
        return row["result"] if row else None

    def cancel(self, job_id: str) -> Job | None:
        row = self._one(
            "UPDATE whispercli_jobs SET"
            f" status = CASE WHEN status = ANY(%s) THEN %s ELSE status END,"
            f" completed_at = CASE WHEN status = ANY(%s) THEN {_NOW} ELSE completed_at END,"
            " cancel_requested = cancel_requested OR status = %s"
            f" WHERE id = %s RETURNING {_JOB_COLUMNS}",
            (_QUEUED, Status.CANCELLED.value, _QUEUED, _PROCESSING, job_id),
        )
        return _job(row) if row else None

    def delete_job(self, job_id: str) -> list[str] | None:
        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "DELETE FROM whispercli_jobs WHERE id = %s RETURNING upload_id", (job_id,)
            ).fetchone()
            if row is None:
                return None
            upload_id = row["upload_id"]
            gone = conn.execute(
                "DELETE FROM whispercli_uploads WHERE id = %s AND NOT EXISTS"
                " (SELECT 1 FROM whispercli_jobs WHERE upload_id = %s) RETURNING id",
                (upload_id, upload_id),
            ).fetchone()
        return [upload_id] if gone is not None else []

    def set_meta(self, job_id: str, data: dict[str, Any]) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO whispercli_job_meta (job_id, data) VALUES (%s, %s)"
                " ON CONFLICT (job_id) DO UPDATE SET data = EXCLUDED.data",
                (job_id, Jsonb(data)),
            )

    def get_meta(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT data FROM whispercli_job_meta WHERE job_id = %s", (job_id,))
        return row["data"] if row else None

    # -- webhook deliveries (rows go with their job: ON DELETE CASCADE) ------------------------
    def add_delivery(
        self,
        job_id: str,
        message_id: str,
        url: str,
        kind: str,
        base_url: str,
        extra: dict[str, Any],
    ) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO whispercli_deliveries (job_id, message_id, url, kind, base_url,"
                " extra) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (job_id) DO NOTHING",
                (job_id, message_id, url, kind, base_url, Jsonb(extra)),
            )

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        with self._conn() as conn:
            rows = conn.execute(
                "WITH due AS (SELECT d.job_id, COALESCE(j.completed_at, %s) AS ended_at"
                " FROM whispercli_deliveries d JOIN whispercli_jobs j ON j.id = d.job_id"
                " WHERE d.state = 'waiting' AND d.next_at <= %s AND j.status = ANY(%s)"
                " ORDER BY d.next_at LIMIT %s FOR UPDATE OF d SKIP LOCKED)"
                " UPDATE whispercli_deliveries d SET next_at = %s FROM due"
                " WHERE d.job_id = due.job_id RETURNING d.*, due.ended_at",
                (now, now, _FINISHED, limit, now + LEASE_SECONDS),
            ).fetchall()
        return [delivery_from_row(r, r["extra"]) for r in rows]

    def record_attempt(
        self, job_id: str, body: bytes, *, delivered: bool, next_at: float | None, error: str | None
    ) -> None:
        state = delivery_state(delivered, next_at)
        with self._conn() as conn:
            conn.execute(
                "UPDATE whispercli_deliveries SET attempts = attempts + 1,"
                " body = COALESCE(body, %s), state = %s, next_at = COALESCE(%s, next_at),"
                " last_error = %s WHERE job_id = %s",
                (body, state, next_at, error, job_id),
            )

    # -- the worker side ---------------------------------------------------------------------
    def claim_next(self) -> Job | None:
        row = self._one(
            f"UPDATE whispercli_jobs SET status = %s, attempts = attempts + 1, started_at = {_NOW},"
            " progress = 0, segments = NULL WHERE id = (SELECT id FROM whispercli_jobs"
            " WHERE status = ANY(%s) ORDER BY accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_JOB_COLUMNS}",
            (_PROCESSING, _QUEUED),
        )
        return _job(row) if row else None

    def claim(self, job_id: str, max_attempts: int) -> Job | None:
        with self._conn() as conn, conn.transaction():
            row = conn.execute(
                "SELECT status, attempts, cancel_requested FROM whispercli_jobs"
                " WHERE id = %s FOR UPDATE",
                (job_id,),
            ).fetchone()
            if row is None or row["status"] not in (*_QUEUED, _PROCESSING):
                return None
            if row["cancel_requested"] or row["attempts"] >= max_attempts:
                cancelled = row["cancel_requested"]
                conn.execute(
                    f"UPDATE whispercli_jobs SET status = %s, error = %s, completed_at = {_NOW},"
                    " progress = 0, segments = NULL WHERE id = %s",
                    (
                        Status.CANCELLED.value if cancelled else Status.FAILED.value,
                        None if cancelled else gave_up(TAKEN_OVER_REASON, row["attempts"]),
                        job_id,
                    ),
                )
                return None
            claimed = conn.execute(
                "UPDATE whispercli_jobs SET status = %s, attempts = attempts + 1,"
                f" started_at = {_NOW}, progress = 0, segments = NULL WHERE id = %s"
                f" RETURNING {_JOB_COLUMNS}",
                (_PROCESSING, job_id),
            ).fetchone()
        assert claimed is not None  # the row is locked by this transaction
        return _job(claimed)

    def set_progress(
        self, job_id: str, attempt: int, progress: float, segments: list[dict[str, Any]]
    ) -> bool:
        with self._conn() as conn:
            cursor = conn.execute(
                "UPDATE whispercli_jobs SET progress = %s, segments = %s"
                " WHERE id = %s AND status = %s AND attempts = %s",
                (progress, Jsonb(segments), job_id, _PROCESSING, attempt),
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
        with self._conn() as conn:
            cursor = conn.execute(
                "UPDATE whispercli_jobs SET status = %s, result = %s, error = %s,"
                f" completed_at = {_NOW}, progress = CASE WHEN %s THEN 1 ELSE progress END,"
                " segments = NULL WHERE id = %s AND status = %s AND attempts = %s",
                (
                    status.value,
                    Jsonb(result) if result is not None else None,
                    error,
                    status is Status.SUCCESS,
                    job_id,
                    _PROCESSING,
                    attempt,
                ),
            )
            return cursor.rowcount == 1

    def requeue_or_fail(self, job_id: str, attempt: int, reason: str, max_attempts: int) -> str:
        row = self._one(
            "UPDATE whispercli_jobs SET"
            " status = CASE WHEN cancel_requested THEN %(cancelled)s"
            "   WHEN attempts >= %(max)s THEN %(failed)s ELSE %(pending)s END,"
            " error = CASE WHEN NOT cancel_requested AND attempts >= %(max)s"
            "   THEN %(reason)s || '; gave up after ' || attempts || ' attempts' END,"
            " completed_at = CASE WHEN cancel_requested OR attempts >= %(max)s"
            f"   THEN {_NOW} END,"
            " progress = 0, segments = NULL"
            " WHERE id = %(id)s AND status = %(processing)s AND attempts = %(attempt)s"
            " RETURNING status",
            {
                "cancelled": Status.CANCELLED.value,
                "failed": Status.FAILED.value,
                "pending": Status.PENDING.value,
                "max": max_attempts,
                "reason": reason,
                "id": job_id,
                "processing": _PROCESSING,
                "attempt": attempt,
            },
        )
        return str(row["status"]) if row else "gone"

    def release(self, job_id: str, attempt: int) -> None:
        with self._conn() as conn:
            conn.execute(
                "UPDATE whispercli_jobs SET status = %s, attempts = GREATEST(attempts - 1, 0),"
                " progress = 0, segments = NULL WHERE id = %s AND status = %s AND attempts = %s",
                (Status.PENDING.value, job_id, _PROCESSING, attempt),
            )

    def recover(self, max_attempts: int) -> list[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, attempts FROM whispercli_jobs WHERE status = %s", (_PROCESSING,)
            ).fetchall()
        reason = "the server stopped while this job was processing"
        return [self.requeue_or_fail(r["id"], r["attempts"], reason, max_attempts) for r in rows]

    # -- retention ---------------------------------------------------------------------------
    def sweep(self, retention: float) -> Swept:
        with self._conn() as conn, conn.transaction():
            cutoff = f"{_NOW} - %s"
            jobs = conn.execute(
                "DELETE FROM whispercli_jobs WHERE status = ANY(%s)"
                f" AND completed_at < {cutoff} RETURNING upload_id",
                (_FINISHED, retention),
            ).fetchall()
            freed = {r["upload_id"] for r in jobs}
            gone = conn.execute(
                "DELETE FROM whispercli_uploads u WHERE (u.id = ANY(%s)"
                f" OR u.created_at < {cutoff}) AND NOT EXISTS"
                " (SELECT 1 FROM whispercli_jobs j WHERE j.upload_id = u.id) RETURNING id",
                (sorted(freed), retention),
            ).fetchall()
        return Swept(len(jobs), [r["id"] for r in gone])
