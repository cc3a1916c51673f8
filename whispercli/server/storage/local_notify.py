"""The embedded default's :class:`~whispercli.server.storage.notify.Notifier`: one process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator


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
