"""The bytes of uploads: the :class:`BlobStore` interface.

A blob is written once from a stream (:func:`write`: memory stays flat, the limit is checked as
bytes arrive, a partial write leaves nothing behind), read back as a stream (``read``) or as a
local file for the engine (``local_file``), and deleted. ``stage`` stores a stream aside and
lets the caller publish it only if it still may (an upload's bytes are published inside the
store's ``commit_upload``, so a job never starts on bytes being replaced). Blob ids are chosen
by the server (upload ids), never taken from a request. Implementations: :mod:`.disk_blobs`
(the embedded default) and :mod:`.postgres.blobs`;
tests/server/storage/test_store_contract.py checks both.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Iterator
from pathlib import Path
from typing import Protocol

READ_CHUNK = 1024 * 1024
"""Blobs are read back in pieces of this size."""


class BlobTooLarge(Exception):
    """The stream went past the limit; nothing was kept."""


class StorageFull(Exception):
    """No space left to store the blob; nothing was kept."""


class Staged(Protocol):
    """A blob's new bytes, stored aside until ``publish`` puts them in place of the old ones."""

    size: int

    def publish(self) -> None:
        """Replace the blob with these bytes (readers see the old bytes or these, never a mix)."""
        ...

    def discard(self) -> None:
        """Drop these bytes unless they were published (no error either way)."""
        ...


class BlobStore(Protocol):
    async def stage(self, blob_id: str, chunks: AsyncIterable[bytes], limit: int) -> Staged:
        """Store the stream aside as the next bytes of ``blob_id``; the blob is unchanged
        until the result is published (the caller discards it if it is not).

        Raises :class:`BlobTooLarge` past ``limit`` bytes, :class:`StorageFull` when out of
        space; an exception of the stream itself propagates. In every failure the previous
        blob (if any) is kept and no partial one is.
        """
        ...

    def read(self, blob_id: str) -> Iterator[bytes]:
        """The blob's bytes in chunks; FileNotFoundError when there is none."""
        ...

    def local_file(self, blob_id: str) -> contextlib.AbstractContextManager[Path]:
        """A path on this machine holding the blob for as long as the context lasts."""
        ...

    def delete(self, blob_id: str) -> None:
        """Remove the blob; no error when there is none."""
        ...


async def write(blobs: BlobStore, blob_id: str, chunks: AsyncIterable[bytes], limit: int) -> int:
    """Store the stream under ``blob_id`` (replacing any previous one); return its size:
    :meth:`BlobStore.stage`, then publish (what is left unpublished is discarded)."""
    staged = await blobs.stage(blob_id, chunks, limit)
    try:
        await asyncio.to_thread(staged.publish)
    finally:
        await asyncio.to_thread(staged.discard)
    return staged.size
