"""The PostgreSQL :class:`~whispercli.server.storage.store.Store` (psycopg 3, a connection pool).

Several API servers and workers share one database: every statement is safe to race
(``FOR UPDATE SKIP LOCKED`` claims, a unique idempotency key, writes fenced by attempt), and
timestamps come from the database's clock, not the callers'. :func:`migrate` installs the
schema (idempotent, under an advisory lock); a trigger NOTIFYs ``whispercli_jobs`` with the
job id on every change, which :mod:`whispercli.server.storage.postgres.notify` listens to.

Why psycopg 3 (not asyncpg): Procrastinate 3 runs on psycopg 3, so the mode has one driver;
it has a blocking API (our Store is blocking and runs in threads) and an async one (LISTEN),
and a pool that reconnects by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg.types.json import Jsonb

from whispercli.protocol import QUEUED_STATUSES, TERMINAL_STATUSES, Status
from whispercli.server.storage.deliveries import (
    LEASE_SECONDS,
    Delivery,
    delivery_from_row,
    delivery_state,
)
from whispercli.server.storage.postgres.pool import Pooled, open_pool
from whispercli.server.storage.store import (
    TAKEN_OVER_REASON,
    JobRecord,
    Swept,
    Upload,
    gave_up,
    new_id,
)

_QUEUED = sorted(QUEUED_STATUSES)
_FINISHED = sorted(TERMINAL_STATUSES)
_PROCESSING = Status.PROCESSING.value
_NOW = "extract(epoch from clock_timestamp())"


def _job(row: dict[str, Any]) -> JobRecord:
    return JobRecord(
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

    def commit_upload(self, upload_id: str, size: int, publish: Callable[[], None]) -> bool:
        # The row lock orders this against create_job's FOR SHARE on the same upload.
        with self._conn() as conn, conn.transaction():
            upload = conn.execute(
                "SELECT id FROM whispercli_uploads WHERE id = %s FOR UPDATE", (upload_id,)
            ).fetchone()
            used = conn.execute(
                "SELECT 1 FROM whispercli_jobs WHERE upload_id = %s LIMIT 1", (upload_id,)
            ).fetchone()
            if upload is None or used is not None:
                return False
            conn.execute("UPDATE whispercli_uploads SET size = %s WHERE id = %s", (size, upload_id))
            publish()
        return True

    # -- jobs ------------------------------------------------------------------------------
    def job_by_key(self, idempotency_key: str) -> JobRecord | None:
        row = self._one(
            f"SELECT {_JOB_COLUMNS} FROM whispercli_jobs WHERE idempotency_key = %s",
            (idempotency_key,),
        )
        return _job(row) if row else None

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._one(f"SELECT {_JOB_COLUMNS} FROM whispercli_jobs WHERE id = %s", (job_id,))
        return _job(row) if row else None

    def create_job(
        self, model: str, params: dict[str, Any], upload_id: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        # The unique key decides between racing servers: the loser reads the winner's job.
        # FOR SHARE waits for a commit_upload of the upload in flight (its FOR UPDATE).
        with self._conn() as conn, conn.transaction():
            conn.execute(
                "SELECT 1 FROM whispercli_uploads WHERE id = %s FOR SHARE", (upload_id,)
            ).fetchone()
            row = conn.execute(
                "INSERT INTO whispercli_jobs (id, status, model, params, upload_id,"
                f" idempotency_key, accepted_at) VALUES (%s, %s, %s, %s, %s, %s, {_NOW})"
                f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING {_JOB_COLUMNS}",
                (new_id(), Status.PENDING.value, model, Jsonb(params), upload_id, idempotency_key),
            ).fetchone()
        if row is not None:
            return _job(row), True
        assert idempotency_key is not None
        existing = self.job_by_key(idempotency_key)
        assert existing is not None
        return existing, False

    def list_jobs(self, status: str | None, limit: int) -> list[JobRecord]:
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

    def cancel(self, job_id: str) -> JobRecord | None:
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
    def claim_next(self) -> JobRecord | None:
        row = self._one(
            f"UPDATE whispercli_jobs SET status = %s, attempts = attempts + 1, started_at = {_NOW},"
            " progress = 0, segments = NULL WHERE id = (SELECT id FROM whispercli_jobs"
            " WHERE status = ANY(%s) ORDER BY accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
            f" RETURNING {_JOB_COLUMNS}",
            (_PROCESSING, _QUEUED),
        )
        return _job(row) if row else None

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
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
