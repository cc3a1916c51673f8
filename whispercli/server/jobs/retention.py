"""The retention sweep: finished jobs, their results and uploads older than the retention
period are deleted, rows by the store and bytes by the blob store. It runs as its own task."""

from __future__ import annotations

import asyncio
import logging

from whispercli.server.storage.blobs import BlobStore
from whispercli.server.storage.store import Store

log = logging.getLogger("whispercli.server")

SWEEP_INTERVAL_SECONDS = 60.0
"""At most this long between sweeps (shorter when the retention itself is short)."""


def sweep_once(store: Store, blobs: BlobStore, retention: float) -> int:
    """One sweep; returns how many jobs and unused uploads it removed."""
    swept = store.sweep(retention)
    for upload_id in swept.uploads:
        blobs.delete(upload_id)
    return swept.jobs + len(swept.uploads)


async def sweep_forever(store: Store, blobs: BlobStore, retention: float) -> None:
    interval = min(SWEEP_INTERVAL_SECONDS, retention / 4)
    while True:
        try:
            removed = await asyncio.to_thread(sweep_once, store, blobs, retention)
        except Exception:
            log.exception("retention sweep failed; trying again later")
        else:
            if removed:
                log.info("retention sweep removed %d old jobs/uploads", removed)
        await asyncio.sleep(interval)
