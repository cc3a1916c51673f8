"""The bytes of uploads: the :class:`BlobStore` interface.

A blob is written once from a stream (``write``: memory stays flat, the limit is checked as
bytes arrive, a partial write leaves nothing behind), read back as a stream (``read``) or as a
local file for the engine (``local_file``), and deleted. Blob ids are chosen by the server
(upload ids), never taken from a request. Implementations: :mod:`.disk_blobs` (the embedded
default) and :mod:`.postgres.blobs`; tests/server/storage/test_store_contract.py checks both.
"""

from __future__ import annotations

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


class BlobStore(Protocol):
    async def write(self, blob_id: str, chunks: AsyncIterable[bytes], limit: int) -> int:
        """Store the stream under ``blob_id`` (replacing any previous one); return its size.

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
