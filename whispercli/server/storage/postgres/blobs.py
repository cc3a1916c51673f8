"""The PostgreSQL :class:`~whispercli.server.storage.disk_blobs.BlobStore`: uploads as bytea chunks.

A write streams the bytes in :data:`CHUNK_BYTES` rows of ``whispercli_blob_chunks`` under a
fresh version, then writes the manifest row (``whispercli_blobs``: version, chunk count, size,
sha256) last, in the transaction that drops the previous version: a reader sees the old blob
or the new one, never a part. Memory stays at one chunk whatever the size; workers on other
machines read the bytes from the database (no shared disk). ``local_file`` copies them to a
scratch file for the engine and checks the sha256 on the way. The schema is
:func:`whispercli.server.storage.postgres.schema.migrate`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import tempfile
from collections.abc import AsyncIterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from whispercli.server.storage.blobs import BlobTooLarge, StorageFull
from whispercli.server.storage.postgres.pool import Pooled, open_pool

CHUNK_BYTES = 4 * 1024 * 1024


class BlobCorrupt(OSError):
    """The bytes read back do not match the manifest's sha256 or size."""


@dataclass
class StagedChunks:
    """Chunks written under a fresh version; publishing writes the manifest that names it."""

    blobs: PostgresBlobStore
    blob_id: str
    version: str
    chunks: int
    size: int
    sha256: str
    published: bool = False

    def publish(self) -> None:
        self.blobs._commit(self.blob_id, self.version, self.chunks, self.size, self.sha256)
        self.published = True

    def discard(self) -> None:
        if not self.published:
            with contextlib.suppress(Exception):
                self.blobs._drop_version(self.blob_id, self.version)


class PostgresBlobStore(Pooled):
    def __init__(
        self, dsn: str, *, scratch_dir: Path | None = None, max_connections: int = 4
    ) -> None:
        """``scratch_dir`` holds the engine's temporary copies (default: the system's)."""
        self.scratch_dir = scratch_dir
        self.pool = open_pool(dsn, max_connections)

    def _put_chunk(self, blob_id: str, version: str, seq: int, data: bytes) -> None:
        try:
            with self._conn() as conn:
                conn.execute(
                    "INSERT INTO whispercli_blob_chunks (blob_id, version, seq, data)"
                    " VALUES (%s, %s, %s, %b)",  # %b: the bytes go binary, not hex text
                    (blob_id, version, seq, data),
                )
        except psycopg.errors.DiskFull:
            raise StorageFull from None

    def _commit(self, blob_id: str, version: str, chunks: int, size: int, sha256: str) -> None:
        with self._conn() as conn, conn.transaction():
            old = conn.execute(
                "SELECT version FROM whispercli_blobs WHERE blob_id = %s FOR UPDATE", (blob_id,)
            ).fetchone()
            conn.execute(
                "INSERT INTO whispercli_blobs (blob_id, version, chunks, size, sha256)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (blob_id) DO UPDATE SET"
                " version = EXCLUDED.version, chunks = EXCLUDED.chunks, size = EXCLUDED.size,"
                " sha256 = EXCLUDED.sha256",
                (blob_id, version, chunks, size, sha256),
            )
            if old is not None:
                conn.execute(
                    "DELETE FROM whispercli_blob_chunks WHERE blob_id = %s AND version = %s",
                    (blob_id, old["version"]),
                )

    def _drop_version(self, blob_id: str, version: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "DELETE FROM whispercli_blob_chunks WHERE blob_id = %s AND version = %s",
                (blob_id, version),
            )

    async def stage(self, blob_id: str, chunks: AsyncIterable[bytes], limit: int) -> StagedChunks:
        version = secrets.token_hex(8)
        digest = hashlib.sha256()
        buffer = bytearray()
        size = seq = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise BlobTooLarge
                digest.update(chunk)
                buffer += chunk
                while len(buffer) >= CHUNK_BYTES:
                    with memoryview(buffer) as view:
                        piece = bytes(view[:CHUNK_BYTES])
                    del buffer[:CHUNK_BYTES]
                    await asyncio.to_thread(self._put_chunk, blob_id, version, seq, piece)
                    seq += 1
            if buffer or seq == 0:
                await asyncio.to_thread(self._put_chunk, blob_id, version, seq, bytes(buffer))
                seq += 1
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._drop_version, blob_id, version)
            raise
        return StagedChunks(self, blob_id, version, seq, size, digest.hexdigest())

    def _manifest(self, blob_id: str) -> dict[str, Any]:
        with self._conn() as conn:
            row: dict[str, Any] | None = conn.execute(
                "SELECT version, chunks, size, sha256 FROM whispercli_blobs WHERE blob_id = %s",
                (blob_id,),
            ).fetchone()
        if row is None:
            raise FileNotFoundError(f"no blob {blob_id}")
        return row

    def read(self, blob_id: str) -> Iterator[bytes]:
        manifest = self._manifest(blob_id)
        for seq in range(manifest["chunks"]):
            with self._conn() as conn:
                row = conn.execute(
                    "SELECT data FROM whispercli_blob_chunks"
                    " WHERE blob_id = %s AND version = %s AND seq = %s",
                    (blob_id, manifest["version"], seq),
                    binary=True,
                ).fetchone()
            if row is None:  # replaced or deleted while we read
                raise FileNotFoundError(f"blob {blob_id} changed while it was read")
            yield bytes(row["data"])

    @contextlib.contextmanager
    def local_file(self, blob_id: str) -> Iterator[Path]:
        manifest = self._manifest(blob_id)
        with tempfile.TemporaryDirectory(prefix="whispercli-", dir=self.scratch_dir) as folder:
            path = Path(folder) / blob_id
            digest = hashlib.sha256()
            size = 0
            with path.open("wb") as out:
                for chunk in self.read(blob_id):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            if (size, digest.hexdigest()) != (manifest["size"], manifest["sha256"]):
                raise BlobCorrupt(f"blob {blob_id} does not match its manifest")
            yield path

    def delete(self, blob_id: str) -> None:
        with self._conn() as conn, conn.transaction():
            conn.execute("DELETE FROM whispercli_blobs WHERE blob_id = %s", (blob_id,))
            conn.execute("DELETE FROM whispercli_blob_chunks WHERE blob_id = %s", (blob_id,))
