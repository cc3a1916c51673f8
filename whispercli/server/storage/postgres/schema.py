"""Our tables in PostgreSQL, and :func:`migrate`, which installs them (idempotent, under an
advisory lock, so that servers and workers starting at once migrate once).

Other parts of the mode bring schemas of their own (Procrastinate's queue tables:
:func:`whispercli.server.scale.queue.migrate` passes them here as ``also``), applied under the
same lock.
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from whispercli.server.storage.postgres.pool import connection_errors

CHANNEL = "whispercli_jobs"
"""The trigger NOTIFYs this channel with the job id on every change of a job row."""

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
    current_jobs text[] NOT NULL DEFAULT '{{}}',
    capacity integer NOT NULL DEFAULT 1,
    started_at double precision NOT NULL,
    heartbeat double precision NOT NULL
);
-- 0.x workers ran one job each (current_job): their rows are rewritten at their next beat
ALTER TABLE whispercli_workers DROP COLUMN IF EXISTS current_job;
ALTER TABLE whispercli_workers ADD COLUMN IF NOT EXISTS current_jobs text[] NOT NULL DEFAULT '{{}}';
ALTER TABLE whispercli_workers ADD COLUMN IF NOT EXISTS capacity integer NOT NULL DEFAULT 1;
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


_STAMP = "whispercli_schema"
"""One row: the fingerprint of the schema scripts last applied."""


def migrate(dsn: str, *also: tuple[str, str]) -> None:
    """Install or update our schema, then each ``(table, script)`` of ``also`` whose table
    does not exist yet; safe to run twice and from racing processes.

    Every server and worker calls this at start, so on a database whose schema is current it
    only reads the stamp: the scripts' DDL (a trigger re-created, columns added) would wait
    for every transaction open on the jobs table and queue every later query behind it."""
    digest = hashlib.sha256(SCHEMA.encode())
    for table, script in also:
        digest.update(f"\0{table}\0{script}".encode())
    fingerprint = digest.hexdigest()
    with connection_errors(), psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATE_LOCK,))
        try:
            if _applied(conn) == fingerprint:
                return
            with conn.transaction():
                conn.execute(SCHEMA)
                for table, script in also:
                    if not _exists(conn, table):
                        conn.execute(script)
                conn.execute(f"CREATE TABLE IF NOT EXISTS {_STAMP} (fingerprint text NOT NULL)")
                conn.execute(f"DELETE FROM {_STAMP}")
                conn.execute(f"INSERT INTO {_STAMP} VALUES (%s)", (fingerprint,))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATE_LOCK,))


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    found = conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()
    return found is not None and found[0] is not None


def _applied(conn: psycopg.Connection[Any]) -> str | None:
    """The fingerprint of the scripts last applied (None before the first migration)."""
    if not _exists(conn, _STAMP):
        return None
    row = conn.execute(f"SELECT fingerprint FROM {_STAMP}").fetchone()
    return None if row is None else str(row[0])
