"""The bytes of uploads: a :class:`BlobStore` interface and the disk implementation.

A blob is written once from a stream (``write``: memory stays flat, the limit is checked as
bytes arrive, a partial write leaves nothing behind), read back as a stream (``read``) or as a
local file for the engine (``local_file``), and deleted. Blob ids are chosen by the server
(upload ids), never taken from a request. tests/server/test_store_contract.py checks every
implementation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import AsyncIterable, Iterator
from pathlib import Path
from typing import Protocol

READ_CHUNK = 1024 * 1024


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


class DiskBlobStore:
    """Files named by id in one private folder, written to a temp name then renamed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, blob_id: str) -> Path:
        return self.folder / blob_id

    async def write(self, blob_id: str, chunks: AsyncIterable[bytes], limit: int) -> int:
        final = self._path(blob_id)
        partial = final.with_name(f"{final.name}.{os.getpid()}.{time.monotonic_ns()}.part")
        size = 0
        try:
            with partial.open("wb") as out:
                os.chmod(partial, 0o600)
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise BlobTooLarge
                    out.write(chunk)
            os.replace(partial, final)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StorageFull from None
        finally:
            partial.unlink(missing_ok=True)
        return size

    def read(self, blob_id: str) -> Iterator[bytes]:
        with self._path(blob_id).open("rb") as fh:
            while chunk := fh.read(READ_CHUNK):
                yield chunk

    @contextlib.contextmanager
    def local_file(self, blob_id: str) -> Iterator[Path]:
        path = self._path(blob_id)
        if not path.exists():
            raise FileNotFoundError(path)
        yield path

    def delete(self, blob_id: str) -> None:
        self._path(blob_id).unlink(missing_ok=True)
