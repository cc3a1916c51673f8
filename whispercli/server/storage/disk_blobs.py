"""The embedded default's :class:`~whispercli.server.storage.blobs.BlobStore`: one file per
blob in a private folder, written to a temp name then renamed."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import AsyncIterable, Iterator
from pathlib import Path

from whispercli.server.storage.blobs import READ_CHUNK, BlobTooLarge, StorageFull


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
