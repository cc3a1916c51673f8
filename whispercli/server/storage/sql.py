"""The thin layer under the job store: what :class:`~.store.Store` needs from a SQL database.

The store's queries are written once, in SQL that SQLite and PostgreSQL both understand, with
``:name`` parameters and ``{fields}`` that a :class:`Dialect` fills in: table names, the clock,
row locks. A :class:`Connector` (one per database: :mod:`.sqlite`, :mod:`.postgres.store`)
lends :class:`Session` objects -- for statements that stand alone, or for a transaction -- and
keeps the results of finished jobs. The split follows Procrastinate's manager/connector: the
rules live in one place, each database supplies only its connection and its words.

Both understand means no ``RETURNING``: it came in SQLite 3.35, and Python on RHEL 9 links
3.34 (a write then reads its row back in the same session or transaction); ``ON CONFLICT``
upserts are fine (3.24).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from whispercli.protocol import QUEUED_STATUSES, TERMINAL_STATUSES, Status

Row = Mapping[str, Any]


def _quoted(*statuses: Status) -> str:
    return ", ".join(sorted(f"'{status.value}'" for status in statuses))


_STATUSES = {status.value: _quoted(status) for status in Status} | {
    "queued": _quoted(*QUEUED_STATUSES),
    "finished": _quoted(*TERMINAL_STATUSES),
}
"""Fields every dialect shares: ``{processing}`` is ``'processing'``, ``{queued}`` and
``{finished}`` the lists for ``status IN (...)``."""


@dataclass(frozen=True, eq=False)  # one per database: hashed by identity, quick to cache on
class Dialect:
    """The words of SQL that differ between databases."""

    tables: str
    """The prefix of our table names (PostgreSQL's database is shared with the queue)."""
    now: str
    """The clock: seconds since the epoch, as a SQL expression."""
    lock: str
    """Lock the rows a ``SELECT`` read until the transaction ends (SQLite: its transactions
    take the whole database already)."""
    skip_locked: str
    """Lock them, skipping rows another transaction holds: racing claimers take different rows."""
    has_result: str
    """The ``has_result`` column of a job row."""
    pyformat: bool
    """Parameters as ``%(name)s`` (psycopg), not ``:name`` (sqlite3)."""
    to_json: Callable[[Any], Any]
    """A value for a JSON column."""
    from_json: Callable[[Any], Any]
    """A JSON column's value as Python data."""

    def prepare(self, sql: str) -> str:
        """``sql`` with the fields filled in and the parameters in the driver's style (so a
        query holds no ``:`` but before a parameter's name)."""
        return _prepare(self, sql)


@functools.lru_cache(maxsize=256)
def _prepare(dialect: Dialect, sql: str) -> str:
    table = {name: dialect.tables + name for name in ("jobs", "uploads", "job_meta", "deliveries")}
    text = sql.format(
        **_STATUSES,
        **table,
        now=dialect.now,
        lock=dialect.lock,
        skip_locked=dialect.skip_locked,
        job=JOB_COLUMNS.format(has_result=dialect.has_result),
    )
    if dialect.pyformat:
        text = re.sub(r":(\w+)", r"%(\1)s", text.replace("%", "%%"))
    return text


JOB_COLUMNS = (
    "id, status, model, params, upload_id, attempts, progress, segments, {has_result},"
    " error, cancel_requested, accepted_at, started_at, completed_at"
)
"""The columns of a :class:`~.store.JobRecord`, ``{job}`` in a query."""


class Session:
    """Statements on one connection (a sqlite3 or a psycopg one: both have ``execute``)."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect

    def _execute(self, sql: str, args: dict[str, Any]) -> Any:
        return self.connection.execute(self.dialect.prepare(sql), args)

    def one(self, sql: str, **args: Any) -> Row | None:
        row: Row | None = self._execute(sql, args).fetchone()
        return row

    def all(self, sql: str, **args: Any) -> list[Row]:
        rows: list[Row] = self._execute(sql, args).fetchall()
        return rows

    def run(self, sql: str, **args: Any) -> int:
        """Run a statement; the number of rows it changed."""
        count: int = self._execute(sql, args).rowcount
        return count


class Connector(Protocol):
    """One database, as the store uses it. A session or a transaction is held only for the
    statements inside it (they do not nest: SQLite's is one connection behind a lock)."""

    dialect: Dialect

    def session(self) -> AbstractContextManager[Session]:
        """Statements that each commit on their own."""
        ...

    def transaction(self) -> AbstractContextManager[Session]:
        """Statements that commit together, or not at all (an exception rolls them back)."""
        ...

    def save_result(self, tx: Session, job_id: str, result: dict[str, Any]) -> None:
        """Keep a finished job's result, within the transaction that finishes it."""
        ...

    def read_result(self, job_id: str) -> dict[str, Any] | None: ...

    def drop_result(self, job_id: str) -> None:
        """Forget a deleted job's result (when it lives outside the job's row)."""
        ...

    def close(self) -> None: ...
