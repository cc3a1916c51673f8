"""The job store: jobs, uploads and their rules, written once over a SQL :class:`~.sql.Connector`.

A :class:`Store` keeps jobs (status, attempts, progress, partial segments, result, error),
upload metadata and idempotency keys, a protocol's metadata and a webhook delivery per job
(it is the :class:`~.deliveries.Outbox`), and applies retention. The bytes of an upload live in
a :class:`~.blobs.BlobStore`; deleting a job or sweeping returns the ids of the uploads no job
uses any more, and the caller deletes their blobs.

The life of a job (each line is a method below; its guard is in its query's ``WHERE``)::

    accepted|pending --claim_next, claim--> processing   (claim also takes over the job of a
                                                          worker that died)
    processing --finish--> success | failed | cancelled
    processing --requeue_or_fail--> pending; cancelled if that was asked; failed once the
                                     attempts are used up (a claim decides the same way)
    processing --release--> pending   (a clean stop: the attempt is not counted)
    accepted|pending --cancel--> cancelled   (a processing job is only flagged, and ends
                                              when its worker sees the flag)

Writes made on behalf of a running job are *fenced by its attempt*: ``set_progress``,
``finish``, ``requeue_or_fail`` and ``release`` take the attempt number the claim gave and
change nothing when the job has moved on (re-queued, taken over, cancelled, deleted).

The database is SQLite (:class:`~.sqlite.SqliteStore`, the embedded default) or PostgreSQL
(:class:`~.postgres.store.PostgresStore`, shared by servers and workers: the queries lock or
skip rows where two callers could race, and the clock is the database's).
tests/server/storage/test_store_contract.py is the contract both pass.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from whispercli.protocol import QUEUED_STATUSES, TERMINAL_STATUSES, Status
from whispercli.server.storage.deliveries import LEASE_SECONDS, Delivery
from whispercli.server.storage.sql import Connector, Row, Session


@dataclass(frozen=True)
class Upload:
    id: str
    extension: str | None
    created_at: float
    size: int | None
    """Bytes stored, or None while nothing was uploaded."""
    used: bool = False
    """A job was submitted with this upload (its URL then takes no other PUT)."""


@dataclass(frozen=True)
class JobRecord:
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


@dataclass(frozen=True)
class Swept:
    """What a retention sweep removed: jobs, and uploads whose blobs the caller deletes."""

    jobs: int
    uploads: list[str]


TAKEN_OVER_REASON = "the worker running this job stopped"
"""The error of a job whose workers kept dying until ``claim`` ran out of attempts."""

RECOVER_REASON = "the server stopped while this job was processing"


def gave_up(reason: str, attempts: int) -> str:
    """The error of a job failed for ``reason`` once it used up its ``attempts``."""
    return f"{reason}; gave up after {attempts} attempts"


class StoreUnavailable(Exception):
    """The database cannot be reached right now; the request may be retried later."""


def new_id() -> str:
    return secrets.token_hex(16)


_CLAIMABLE = {status.value for status in (*QUEUED_STATUSES, Status.PROCESSING)}
_RUNS = "id = :id AND status = {processing} AND attempts = :attempt"
"""The fence: the job still runs the attempt the writer was given."""


class Store:
    """The one job store: every rule above, as queries run through ``connector``."""

    def __init__(self, connector: Connector) -> None:
        self.db = connector
        self._to_json = connector.dialect.to_json
        self._from_json = connector.dialect.from_json

    def close(self) -> None:
        self.db.close()

    def _one(self, sql: str, **args: Any) -> Row | None:
        with self.db.session() as session:
            return session.one(sql, **args)

    def _all(self, sql: str, **args: Any) -> list[Row]:
        with self.db.session() as session:
            return session.all(sql, **args)

    def _run(self, sql: str, **args: Any) -> int:
        with self.db.session() as session:
            return session.run(sql, **args)

    def _job(self, row: Row) -> JobRecord:
        segments = row["segments"]
        return JobRecord(
            id=row["id"],
            status=row["status"],
            model=row["model"],
            params=self._from_json(row["params"]),
            upload_id=row["upload_id"],
            attempts=row["attempts"],
            progress=row["progress"],
            segments=self._from_json(segments) if segments is not None else [],
            has_result=bool(row["has_result"]),
            error=row["error"],
            cancel_requested=bool(row["cancel_requested"]),
            accepted_at=row["accepted_at"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
        )

    # -- uploads -----------------------------------------------------------------------------
    def create_upload(self, extension: str | None) -> str:
        """Record a new, empty upload; return its id."""
        upload_id = new_id()
        self._run(
            "INSERT INTO {uploads} (id, extension, created_at) VALUES (:id, :extension, {now})",
            id=upload_id,
            extension=extension,
        )
        return upload_id

    def get_upload(self, upload_id: str) -> Upload | None:
        row = self._one(
            "SELECT id, extension, created_at, size,"
            " EXISTS (SELECT 1 FROM {jobs} j WHERE j.upload_id = u.id) AS used"
            " FROM {uploads} u WHERE id = :id",
            id=upload_id,
        )
        if row is None:
            return None
        return Upload(
            row["id"], row["extension"], row["created_at"], row["size"], bool(row["used"])
        )

    def commit_upload(self, upload_id: str, size: int, publish: Callable[[], None]) -> bool:
        """Unless a job already uses the upload (or it is gone), call ``publish`` (which puts
        its new bytes in place) and record ``size``, as one atomic step: a ``create_job`` on
        the upload waits while it runs (the upload row's lock). False: nothing was published."""
        with self.db.transaction() as tx:
            if tx.one("SELECT id FROM {uploads} WHERE id = :id {lock}", id=upload_id) is None:
                return False
            if tx.one("SELECT 1 FROM {jobs} WHERE upload_id = :id", id=upload_id) is not None:
                return False
            tx.run("UPDATE {uploads} SET size = :size WHERE id = :id", size=size, id=upload_id)
            publish()
        return True

    def _drop_if_unused(self, tx: Session, upload_id: str) -> list[str]:
        """Delete an upload no job uses; ``[upload_id]`` if it went."""
        gone = tx.run(
            "DELETE FROM {uploads} WHERE id = :id"
            " AND NOT EXISTS (SELECT 1 FROM {jobs} WHERE upload_id = :id)",
            id=upload_id,
        )
        return [upload_id] if gone else []

    # -- jobs --------------------------------------------------------------------------------
    def create_job(
        self, model: str, params: dict[str, Any], upload_id: str, idempotency_key: str | None
    ) -> tuple[JobRecord, bool]:
        """Insert a pending job, or return the job of a known idempotency key (created False).
        The key's unique index decides between racing servers: the loser reads the winner's."""
        job_id = new_id()
        with self.db.transaction() as session:
            # Waits for a commit_upload of this upload in flight: no job on bytes being replaced.
            session.one("SELECT id FROM {uploads} WHERE id = :id {lock}", id=upload_id)
            session.run(
                "INSERT INTO {jobs} (id, status, model, params, upload_id, idempotency_key,"
                " accepted_at) VALUES (:id, {pending}, :model, :params, :upload_id, :key, {now})"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                id=job_id,
                model=model,
                params=self._to_json(params),
                upload_id=upload_id,
                key=idempotency_key,
            )
            row = session.one(
                "SELECT {job} FROM {jobs} WHERE id = :id OR idempotency_key = :key",
                id=job_id,
                key=idempotency_key,
            )
        assert row is not None  # inserted, or the key's job
        job = self._job(row)
        return job, job.id == job_id

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._one("SELECT {job} FROM {jobs} WHERE id = :id", id=job_id)
        return self._job(row) if row else None

    def job_by_key(self, idempotency_key: str) -> JobRecord | None:
        row = self._one(
            "SELECT {job} FROM {jobs} WHERE idempotency_key = :key", key=idempotency_key
        )
        return self._job(row) if row else None

    def list_jobs(self, status: str | None, limit: int) -> list[JobRecord]:
        """Newest first."""
        where = "WHERE status = :status" if status else ""
        rows = self._all(
            f"SELECT {{job}} FROM {{jobs}} {where} ORDER BY accepted_at DESC LIMIT :limit",
            status=status,
            limit=limit,
        )
        return [self._job(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status (statuses with none may be missing)."""
        rows = self._all("SELECT status, COUNT(*) AS n FROM {jobs} GROUP BY status")
        return {row["status"]: row["n"] for row in rows}

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        return self.db.read_result(job_id)

    def cancel(self, job_id: str) -> JobRecord | None:
        """Cancel a queued job now; flag a processing one (``cancel_requested``). One
        statement reads the status and changes it: a claim or a crash cannot slip between."""
        with self.db.session() as session:
            session.run(
                "UPDATE {jobs} SET"
                " status = CASE WHEN status IN ({queued}) THEN {cancelled} ELSE status END,"
                " completed_at = CASE WHEN status IN ({queued}) THEN {now} ELSE completed_at END,"
                " cancel_requested = (cancel_requested OR status = {processing})"
                " WHERE id = :id",
                id=job_id,
            )
            row = session.one("SELECT {job} FROM {jobs} WHERE id = :id", id=job_id)
        return self._job(row) if row else None

    def delete_job(self, job_id: str) -> list[str] | None:
        """Delete a job, its result, metadata and delivery; None when unknown, else the upload
        ids now unused."""
        with self.db.transaction() as tx:
            row = tx.one("SELECT upload_id FROM {jobs} WHERE id = :id", id=job_id)
            tx.run("DELETE FROM {job_meta} WHERE job_id = :id", id=job_id)
            tx.run("DELETE FROM {deliveries} WHERE job_id = :id", id=job_id)
            if row is None or not tx.run("DELETE FROM {jobs} WHERE id = :id", id=job_id):
                return None  # unknown, or deleted by a racing caller
            freed = self._drop_if_unused(tx, row["upload_id"])
        self.db.drop_result(job_id)
        return freed

    def set_meta(self, job_id: str, data: dict[str, Any]) -> None:
        """Keep a protocol's data about a job (Eden's providers...), replacing any."""
        self._run(
            "INSERT INTO {job_meta} (job_id, data) VALUES (:id, :data)"
            " ON CONFLICT (job_id) DO UPDATE SET data = excluded.data",
            id=job_id,
            data=self._to_json(data),
        )

    def get_meta(self, job_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT data FROM {job_meta} WHERE job_id = :id", id=job_id)
        return self._from_json(row["data"]) if row else None

    # -- webhook deliveries (the Outbox) -----------------------------------------------------
    def add_delivery(
        self,
        job_id: str,
        message_id: str,
        url: str,
        kind: str,
        base_url: str,
        extra: dict[str, Any],
    ) -> None:
        """Record that ``job_id`` is to be delivered to ``url`` once it ends (the first only)."""
        self._run(
            "INSERT INTO {deliveries} (job_id, message_id, url, kind, base_url, extra)"
            " VALUES (:job_id, :message_id, :url, :kind, :base_url, :extra)"
            " ON CONFLICT (job_id) DO NOTHING",
            job_id=job_id,
            message_id=message_id,
            url=url,
            kind=kind,
            base_url=base_url,
            extra=self._to_json(extra),
        )

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Claim the deliveries of ended jobs, neither delivered nor given up, due at ``now``:
        each is leased (due again only :data:`LEASE_SECONDS` later) in the transaction that
        picks it, and racing deliverers skip the rows another one is picking."""
        with self.db.transaction() as tx:
            rows = tx.all(
                "SELECT d.*, COALESCE((SELECT completed_at FROM {jobs} j WHERE j.id = d.job_id),"
                " :now) AS ended_at FROM {deliveries} d"
                " WHERE d.state = 'waiting' AND d.next_at <= :now"
                " AND d.job_id IN (SELECT id FROM {jobs} WHERE status IN ({finished}))"
                " ORDER BY d.next_at LIMIT :limit {skip_locked}",
                now=now,
                limit=limit,
            )
            for row in rows:
                tx.run(
                    "UPDATE {deliveries} SET next_at = :lease WHERE job_id = :id",
                    lease=now + LEASE_SECONDS,
                    id=row["job_id"],
                )
        return [
            Delivery(
                job_id=row["job_id"],
                message_id=row["message_id"],
                url=row["url"],
                kind=row["kind"],
                base_url=row["base_url"],
                ended_at=row["ended_at"],
                attempts=row["attempts"],
                body=bytes(row["body"]) if row["body"] is not None else None,
                extra=self._from_json(row["extra"]),
            )
            for row in rows
        ]

    def record_attempt(
        self, job_id: str, body: bytes, *, delivered: bool, next_at: float | None, error: str | None
    ) -> None:
        """Count one attempt; ``delivered`` ends it, else retry at ``next_at`` (None: give
        up). The body of the first attempt is kept and sent again on every retry."""
        state = "delivered" if delivered else "waiting" if next_at is not None else "abandoned"
        self._run(
            "UPDATE {deliveries} SET attempts = attempts + 1, body = COALESCE(body, :body),"
            " state = :state, next_at = COALESCE(:next_at, next_at), last_error = :error"
            " WHERE job_id = :id",
            body=body,
            state=state,
            next_at=next_at,
            error=error,
            id=job_id,
        )

    # -- the worker side (fenced by attempt) -------------------------------------------------
    def claim_next(self) -> JobRecord | None:
        """Move the oldest queued job to ``processing`` with one more attempt; return it.
        Racing claimers skip the row another one is taking: each job goes to one claimer."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT id FROM {jobs} WHERE status IN ({queued})"
                " ORDER BY accepted_at LIMIT 1 {skip_locked}"
            )
            return self._start(tx, row["id"]) if row else None

    def claim(self, job_id: str, max_attempts: int) -> JobRecord | None:
        """Start ``job_id`` for the worker a queue handed it to: a queued job, or one left
        ``processing`` by a worker that died (taking it over fences out the old attempt), moves
        to ``processing`` with one more attempt. None when there is nothing to run: unknown or
        finished; a cancel was asked (it ends ``cancelled``); a take-over past
        ``max_attempts`` (it ends ``failed``). The row is locked while this decides."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT status, attempts, cancel_requested FROM {jobs} WHERE id = :id {lock}",
                id=job_id,
            )
            if row is None or row["status"] not in _CLAIMABLE:
                return None
            status, error = self._after_stop(row, TAKEN_OVER_REASON, max_attempts)
            if status is Status.PENDING:
                return self._start(tx, job_id)
            self._stop(tx, job_id, status, error)
            return None

    def set_progress(
        self, job_id: str, attempt: int, progress: float, segments: list[dict[str, Any]]
    ) -> bool:
        changed = self._run(
            f"UPDATE {{jobs}} SET progress = :progress, segments = :segments WHERE {_RUNS}",
            progress=progress,
            segments=self._to_json(segments),
            id=job_id,
            attempt=attempt,
        )
        return changed == 1

    def finish(
        self,
        job_id: str,
        attempt: int,
        status: Status,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record a terminal status (with the result on success) if ``attempt`` still runs.
        The result is kept in the same transaction: a late write of an older attempt keeps
        nothing either."""
        with self.db.transaction() as tx:
            changed = tx.run(
                "UPDATE {jobs} SET status = :status, error = :error, completed_at = {now},"
                " progress = CASE WHEN :success THEN 1 ELSE progress END, segments = NULL"
                f" WHERE {_RUNS}",
                status=status.value,
                error=error,
                success=status is Status.SUCCESS,
                id=job_id,
                attempt=attempt,
            )
            if changed and result is not None:
                self.db.save_result(tx, job_id, result)
        return changed == 1

    def requeue_or_fail(self, job_id: str, attempt: int, reason: str, max_attempts: int) -> str:
        """After a crash mid-job: queue it again, cancel it if asked, or fail it once
        ``max_attempts`` are used up. Returns the new status ("gone" when not running it)."""
        with self.db.transaction() as tx:
            row = tx.one(
                f"SELECT attempts, cancel_requested FROM {{jobs}} WHERE {_RUNS} {{lock}}",
                id=job_id,
                attempt=attempt,
            )
            if row is None:
                return "gone"
            status, error = self._after_stop(row, reason, max_attempts)
            self._stop(tx, job_id, status, error)
        return status.value

    def release(self, job_id: str, attempt: int) -> None:
        """Put a processing job back in the queue without counting the attempt (clean stop)."""
        self._run(
            "UPDATE {jobs} SET status = {pending}, attempts = :before, progress = 0,"
            f" segments = NULL WHERE {_RUNS}",
            before=max(attempt - 1, 0),
            id=job_id,
            attempt=attempt,
        )

    def recover(self, max_attempts: int) -> list[str]:
        """On start of the only worker: jobs a crash left ``processing`` are re-queued or
        failed; returns their new statuses."""
        rows = self._all("SELECT id, attempts FROM {jobs} WHERE status = {processing}")
        return [
            self.requeue_or_fail(row["id"], row["attempts"], RECOVER_REASON, max_attempts)
            for row in rows
        ]

    @staticmethod
    def _after_stop(row: Row, reason: str, max_attempts: int) -> tuple[Status, str | None]:
        """Where a job goes when its run stopped (or before a take-over): ``cancelled`` if
        that was asked, ``failed`` once its attempts are used up, else ``pending`` again."""
        if row["cancel_requested"]:
            return Status.CANCELLED, None
        if row["attempts"] >= max_attempts:
            return Status.FAILED, gave_up(reason, row["attempts"])
        return Status.PENDING, None

    def _start(self, tx: Session, job_id: str) -> JobRecord:
        tx.run(
            "UPDATE {jobs} SET status = {processing}, attempts = attempts + 1,"
            " started_at = {now}, progress = 0, segments = NULL WHERE id = :id",
            id=job_id,
        )
        row = tx.one("SELECT {job} FROM {jobs} WHERE id = :id", id=job_id)
        assert row is not None  # this transaction holds the row
        return self._job(row)

    def _stop(self, tx: Session, job_id: str, status: Status, error: str | None) -> None:
        tx.run(
            "UPDATE {jobs} SET status = :status, error = :error,"
            " completed_at = CASE WHEN :ended THEN {now} END, progress = 0, segments = NULL"
            " WHERE id = :id",
            status=status.value,
            error=error,
            ended=status in TERMINAL_STATUSES,
            id=job_id,
        )

    # -- retention ---------------------------------------------------------------------------
    def sweep(self, retention: float) -> Swept:
        """Delete jobs that ended more than ``retention`` seconds ago, and uploads that old
        which no job uses (one job a transaction: polls wait for none of it)."""
        old = self._all(
            "SELECT id FROM {jobs} WHERE status IN ({finished})"
            " AND completed_at < {now} - :retention",
            retention=retention,
        )
        removed = 0
        freed: list[str] = []
        for row in old:
            unused = self.delete_job(row["id"])
            if unused is not None:
                removed += 1
                freed += unused
        with self.db.transaction() as tx:
            orphans = tx.all(
                "SELECT id FROM {uploads} u WHERE created_at < {now} - :retention"
                " AND NOT EXISTS (SELECT 1 FROM {jobs} j WHERE j.upload_id = u.id)",
                retention=retention,
            )
            for row in orphans:
                freed += self._drop_if_unused(tx, row["id"])
        return Swept(removed, freed)
