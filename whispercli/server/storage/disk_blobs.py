"""The embedded default's :class:`~whispercli.server.storage.blobs.BlobStore`: one file per
blob in a private folder, written to a temp name then renamed."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from whispercli.server.storage.blobs import READ_CHUNK, BlobTooLarge, StorageFull


@dataclass
class StagedFile:
    """A written temp file, renamed over the blob on publish."""

    size: int
    partial: Path
    final: Path

    def publish(self) -> None:
        os.replace(self.partial, self.final)

    def discard(self) -> None:
        self.partial.unlink(missing_ok=True)


class DiskBlobStore:
    """Files named by id in one private folder, written to a temp name then renamed."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, blob_id: str) -> Path:
        return self.folder / blob_id

    async def stage(self, blob_id: str, chunks: AsyncIterable[bytes], limit: int) -> StagedFile:
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
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull from None
            raise
        return StagedFile(size, partial, final)

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
