"""Change notification: wakes long-poll requests when a job changes.

:class:`Notifier` is the interface; :class:`~.local_notify.LocalNotifier` serves one process
(the runner thread and the request handlers share it); :mod:`.postgres.notify` serves many
(LISTEN/NOTIFY). A notification is only a hint to look again: a waiter always re-reads the
store, so a lost or duplicate one costs a poll, never a wrong answer.
"""

from __future__ import annotations

import asyncio
import contextlib
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
