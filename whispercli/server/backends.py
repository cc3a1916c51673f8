"""Which storage the server uses: the embedded default, or PostgreSQL when the settings name
a database. A backend is a store, a blob store and a notifier that fit together."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from whispercli.server.blobs import BlobStore, DiskBlobStore
from whispercli.server.notify import LocalNotifier, Notifier
from whispercli.server.settings import ServerSettings
from whispercli.server.sqlite_store import SqliteStore
from whispercli.server.store import Store

if TYPE_CHECKING:
    from whispercli.server.fleet import Fleet
    from whispercli.server.queue import QueueDispatcher

log = logging.getLogger("whispercli.server")


@dataclass
class Backend:
    store: Store
    blobs: BlobStore
    notifier: Notifier
    shared: bool = False
    """Other servers and workers use the same storage: no local engine, no crash recovery by
    this process (dispatch and stalled jobs belong to the queue)."""
    closers: list[object] = field(default_factory=list)
    dispatcher: QueueDispatcher | None = None
    """Enqueues new jobs for the workers (with shared storage)."""
    fleet: Fleet | None = None
    """The live workers and the queues (with shared storage)."""

    def close(self) -> None:
        for part in (self.store, *self.closers):
            close = getattr(part, "close", None)
            if callable(close):
                close()


def open_backend(settings: ServerSettings) -> Backend:
    if not settings.database_url:
        return Backend(
            SqliteStore(settings.data_dir),
            DiskBlobStore(settings.data_dir / "uploads"),
            LocalNotifier(),
        )
    # psycopg is imported only here: the embedded default never needs it.
    from whispercli.server.postgres_blobs import PostgresBlobStore
    from whispercli.server.postgres_notify import PostgresNotifier
    from whispercli.server.postgres_store import PostgresStore, migrate

    dsn = settings.database_url
    migrate(dsn)
    scratch = settings.data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    blobs = PostgresBlobStore(dsn, scratch_dir=scratch)
    from whispercli.server.fleet import Fleet
    from whispercli.server.queue import STALLED_AFTER_SECONDS, TASK, QueueDispatcher

    log.info("jobs and uploads in PostgreSQL at %s", settings.database_shown)
    store = PostgresStore(dsn)
    fleet = Fleet(store.pool, STALLED_AFTER_SECONDS, TASK)
    return Backend(store, blobs, PostgresNotifier(dsn), True, [blobs], QueueDispatcher(dsn), fleet)
