"""Connections to PostgreSQL for the stores: one pool each, connection trouble turned into
:class:`~whispercli.server.storage.store.StoreUnavailable` (whose message names no DSN)."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

from whispercli.server.storage.store import StoreUnavailable


@contextlib.contextmanager
def connection_errors() -> Iterator[None]:
    """Connection trouble becomes StoreUnavailable (whose message names no DSN)."""
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreUnavailable(f"the database is unavailable: {first}") from None


def steady_reconnects() -> None:
    """Make every psycopg pool of this process (ours and Procrastinate's) look for a lost
    database every second until it is back.

    psycopg_pool doubles the delay between attempts from 1 s with no cap (1, 2, 4, 8 s...), and
    has no option for it. Procrastinate's worker cannot stop before its pool has written the
    task's status, so after a PostgreSQL restart of about 7 s a worker's job ended 9.2 s after
    the database was back, against 3.4-5.9 s with this (test_postgres_workers.py's restart
    test, timed by hand). Only the growth changes (a class attribute); the first delay (1 s,
    jittered) and the pools' give-up time stay.
    """
    AttemptWithBackoff.DELAY_BACKOFF = 1.0
    pool_log = logging.getLogger("psycopg.pool")
    if not any(isinstance(f, FailedAttempts) for f in pool_log.filters):
        pool_log.addFilter(FailedAttempts())


class FailedAttempts(logging.Filter):
    """Lets through one of psycopg_pool's "error connecting" warnings every ``seconds`` per
    pool, with the count of those dropped: a pool that looks for a lost database every second
    (:func:`steady_reconnects`) would otherwise log a line a second for the whole outage."""

    def __init__(self, seconds: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.seconds, self.clock = seconds, clock
        self._last: dict[object, float] = {}
        self._dropped: dict[object, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not (isinstance(record.msg, str) and record.msg.startswith("error connecting")):
            return True
        pool = record.args[0] if isinstance(record.args, tuple) and record.args else None
        now = self.clock()
        if now - self._last.get(pool, -math.inf) < self.seconds:
            self._dropped[pool] = self._dropped.get(pool, 0) + 1
            return False
        dropped = self._dropped.pop(pool, 0)
        if dropped:
            record.msg += f" ({dropped} more failed attempts since the last line)"
        self._last[pool] = now
        return True


def open_pool(dsn: str, max_connections: int) -> ConnectionPool:
    """An open pool of autocommit connections giving dict rows (StoreUnavailable if the
    database cannot be reached)."""
    steady_reconnects()
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
