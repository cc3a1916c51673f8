"""The PostgreSQL store: the one :class:`~whispercli.server.storage.store.Store` over psycopg 3
and a connection pool.

Several API servers and workers share one database: the store's queries take ``FOR UPDATE``
row locks where a decision reads a row before changing it, claims skip rows another
transaction holds (``SKIP LOCKED``), the idempotency key is a unique index, writes are fenced
by attempt, and timestamps come from the database's clock, not the callers'. Results live in
the job's row (``result jsonb``). The schema is :mod:`.schema`'s (a trigger there NOTIFYs
every change of a job row, which :mod:`.notify` listens to).

Why psycopg 3 (not asyncpg): Procrastinate 3 runs on psycopg 3, so the mode has one driver;
it has a blocking API (our Store is blocking and runs in threads) and an async one (LISTEN),
and a pool that reconnects by itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from psycopg.types.json import Jsonb

from whispercli.server.storage.postgres.pool import Pooled, open_pool
from whispercli.server.storage.sql import Dialect, Session
from whispercli.server.storage.store import Store

POSTGRES = Dialect(
    tables="whispercli_",
    now="extract(epoch from clock_timestamp())",
    lock="FOR UPDATE",
    skip_locked="FOR UPDATE SKIP LOCKED",
    has_result="result IS NOT NULL AS has_result",  # the result itself stays in the row
    pyformat=True,
    to_json=Jsonb,
    from_json=lambda value: value,  # psycopg decodes jsonb
)


class PostgresConnector(Pooled):
    dialect = POSTGRES

    def __init__(self, dsn: str, max_connections: int) -> None:
        self.pool = open_pool(dsn, max_connections)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._conn() as conn:
            yield Session(conn, POSTGRES)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._conn() as conn, conn.transaction():
            yield Session(conn, POSTGRES)

    def save_result(self, tx: Session, job_id: str, result: dict[str, Any]) -> None:
        tx.run("UPDATE {jobs} SET result = :result WHERE id = :id", result=Jsonb(result), id=job_id)

    def read_result(self, job_id: str) -> dict[str, Any] | None:
        with self.session() as session:
            row = session.one("SELECT result FROM {jobs} WHERE id = :id", id=job_id)
        return row["result"] if row else None

    def drop_result(self, job_id: str) -> None:
        """Nothing to do: the result went with the job's row."""


class PostgresStore(Store):
    """The job store on the PostgreSQL database at ``dsn`` (migrated already); ``pool`` is
    open to the mode's other parts (the fleet's table)."""

    def __init__(self, dsn: str, *, max_connections: int = 8) -> None:
        connector = PostgresConnector(dsn, max_connections)
        super().__init__(connector)
        self.pool = connector.pool
