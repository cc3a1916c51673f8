"""Change notification: wakes long-poll requests when a job changes.

:class:`Notifier` is the interface; :class:`LocalNotifier` serves one process (the runner
thread and the request handlers share it); :mod:`whispercli.server.postgres_notify` serves
many (LISTEN/NOTIFY). A notification is only a hint to look again: a
waiter always re-reads the store, so a lost or duplicate one costs a poll, never a wrong
answer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Protocol


class Notifier(Protocol):
    async def start(self) -> None:
        """Bind to the running event loop (called once by the app's lifespan)."""
        ...

    async def close(self) -> None: ...

    def notify(self, job_id: str) -> None:
        """Say ``job_id`` changed; safe from any thread."""
        ...

    def subscribe(self, job_id: str) -> contextlib.AbstractContextManager[asyncio.Event]:
        """An event set on the next change of ``job_id`` while the context lasts."""
        ...


class LocalNotifier:
    """In-process: events on the server's loop, set from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self._loop = None

    def notify(self, job_id: str) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed at shutdown
                loop.call_soon_threadsafe(self._wake, job_id)

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def wake(self, job_id: str) -> None:
        """:meth:`notify` from the loop's own thread: wake the waiters of ``job_id`` now."""
        self._wake(job_id)

    def wake_all(self) -> None:
        """Wake every waiter (after notifications may have been missed)."""
        for events in self._waiters.values():
            for event in events:
                event.set()

    @contextlib.contextmanager
    def subscribe(self, job_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]
