"""Change notification across machines: PostgreSQL LISTEN/NOTIFY.

The jobs table's trigger (see :mod:`whispercli.server.storage.postgres.schema`) NOTIFYs the job
id on every insert, update and delete, whoever writes it -- an API server or a worker on another
machine -- so :meth:`PostgresNotifier.notify` only needs to wake this process's waiters. One
listening connection per API server feeds a :class:`~..local_notify.LocalNotifier`;
when that connection drops it reconnects with a back-off and wakes every waiter (they re-read
the store: a missed notification costs a read, never a wrong answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from whispercli.server.storage.local_notify import LocalNotifier
from whispercli.server.storage.postgres.schema import CHANNEL

log = logging.getLogger("whispercli.server")

MAX_RECONNECT_DELAY = 5.0


class PostgresNotifier:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = LocalNotifier()
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()
        """Set while the LISTEN connection is up (tests wait for it)."""

    async def start(self) -> None:
        await self._local.start()
        self.listening = asyncio.Event()
        self._task = asyncio.create_task(self._listen(), name="postgres-listen")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._local.close()

    def notify(self, job_id: str) -> None:
        self._local.notify(job_id)  # the trigger tells the other processes

    def subscribe(self, job_id: str) -> contextlib.AbstractContextManager[asyncio.Event]:
        return self._local.subscribe(job_id)

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._local.wake_all()  # whatever changed while we were not listening
                    delay = 0.1
                    async for note in conn.notifies():
                        self._local.wake(note.payload)
            except psycopg.OperationalError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else "closed"
                log.warning(
                    "listening for job changes failed (%s); retrying in %.1f s", first, delay
                )
            self.listening.clear()
            self._local.wake_all()
            await asyncio.sleep(delay)
            delay = min(MAX_RECONNECT_DELAY, delay * 2)
