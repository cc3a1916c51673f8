"""Which storage the server uses: the embedded default, or PostgreSQL when the settings name
a database. :class:`Storage` is a store, a blob store and a notifier that fit together.

The PostgreSQL schema is not installed here: the scale-out mode migrates it together with the
queue's (:func:`whispercli.server.scale.queue.migrate`) before it opens the storage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from whispercli.server.settings import ServerSettings
from whispercli.server.storage.blobs import BlobStore
from whispercli.server.storage.disk_blobs import DiskBlobStore
from whispercli.server.storage.local_notify import LocalNotifier
from whispercli.server.storage.notify import Notifier
from whispercli.server.storage.sqlite import SqliteStore
from whispercli.server.storage.store import Store

log = logging.getLogger("whispercli.server")


@dataclass
class Storage:
    store: Store
    blobs: BlobStore
    notifier: Notifier
    shared: bool = False
    """Other servers and workers use the same storage: no local engine, no crash recovery by
    this process (dispatch and stalled jobs belong to the queue)."""
    closers: list[object] = field(default_factory=list)
    """Parts besides the store that hold connections (closed by :meth:`close`)."""

    def close(self) -> None:
        for part in (self.store, *self.closers):
            close = getattr(part, "close", None)
            if callable(close):
                close()


def local_storage(
    settings: ServerSettings,
    store: Store | None = None,
    blobs: BlobStore | None = None,
    notifier: Notifier | None = None,
) -> Storage:
    """The embedded default's storage in ``settings.data_dir``, with any part given instead."""
    return Storage(
        store if store is not None else SqliteStore(settings.data_dir),
        blobs if blobs is not None else DiskBlobStore(settings.data_dir / "uploads"),
        notifier if notifier is not None else LocalNotifier(),
    )


def open_storage(settings: ServerSettings) -> Storage:
    """The storage ``settings`` name: PostgreSQL (already migrated) or the embedded default."""
    if not settings.database_url:
        return local_storage(settings)
    # psycopg is imported only here: the embedded default never needs it.
    from whispercli.server.storage.postgres.blobs import PostgresBlobStore
    from whispercli.server.storage.postgres.notify import PostgresNotifier
    from whispercli.server.storage.postgres.store import PostgresStore

    dsn = settings.database_url
    scratch = settings.data_dir / "scratch"
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    blobs = PostgresBlobStore(dsn, scratch_dir=scratch)
    log.info("jobs and uploads in PostgreSQL at %s", settings.database_shown)
    return Storage(PostgresStore(dsn), blobs, PostgresNotifier(dsn), True, [blobs])
