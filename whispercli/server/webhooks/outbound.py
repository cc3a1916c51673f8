"""Outbound work a request asks for (Eden's ``file_url`` download, a webhook URL's DNS check),
kept apart from request handling.

It runs on threads of its own (:data:`THREADS`), never on asyncio's default pool, which every
store call of the server uses: however slow a remote end is, store calls, and with them
health checks, uploads and polls, go on. Work that finds no free thread is refused at once
(:class:`OutboundBusy`: retry later) rather than queued, and at most :data:`DOWNLOADS` of the
threads download at once. A download has a total deadline (a :class:`~.sender.Watchdog` shuts
its socket when the time is up, however the peer paces its bytes); the caller caps its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from whispercli.server.webhooks import guard, sender

THREADS = 8
DOWNLOADS = 4
"""Downloads at once: the other threads stay free for quick work (DNS checks)."""
CHUNK_BYTES = 1024 * 1024

P = ParamSpec("P")
T = TypeVar("T")


class OutboundBusy(Exception):
    """Every outbound thread (or download slot) is taken: retry in a few seconds."""


class DownloadFailed(Exception):
    """The URL was refused, did not answer 2xx, broke off or ran past the deadline."""


@dataclass
class Download:
    length: int | None
    """The ``Content-Length`` the server announced, if any."""
    chunks: AsyncIterator[bytes]


class Outbound:
    def __init__(
        self,
        policy: guard.Policy,
        *,
        download_seconds: float,
        timeout: float = sender.TIMEOUT,
    ) -> None:
        """``download_seconds``: how long a whole download may take."""
        self.policy, self.download_seconds, self.timeout = policy, download_seconds, timeout
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="outbound")
        self._lock = threading.Lock()
        self._threads, self._downloads = THREADS, DOWNLOADS
        self._watchdogs: set[sender.Watchdog] = set()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args)`` on an outbound thread (:class:`OutboundBusy` if none is free)."""
        self._take(download=False)
        try:
            return await self._in_pool(fn, *args, **kwargs)
        finally:
            self._give(download=False)

    @contextlib.asynccontextmanager
    async def download(self, url: str) -> AsyncIterator[Download]:
        """GET ``url`` under the SSRF rules (no redirects); yields its length and bytes."""
        self._take(download=True)
        dog = sender.Watchdog(self.download_seconds)
        with self._lock:
            self._watchdogs.add(dog)
        conn = None
        try:
            with dog:
                outcome, response, conn = await self._in_pool(
                    sender.request, "GET", url, self.policy, timeout=self.timeout, watchdog=dog
                )
                if response is None or not outcome.ok:
                    raise DownloadFailed(outcome.error or f"HTTP {outcome.status}")
                length = response.getheader("content-length") or ""
                declared = int(length) if length.isdigit() else None
                yield Download(declared, self._chunks(response, dog))
        finally:
            if conn is not None:
                conn.close()
            with self._lock:
                self._watchdogs.discard(dog)
            self._give(download=True)

    async def _chunks(
        self, response: http.client.HTTPResponse, dog: sender.Watchdog
    ) -> AsyncIterator[bytes]:
        while True:
            try:
                data = await self._in_pool(response.read1, CHUNK_BYTES)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                if dog.fired:
                    raise DownloadFailed(
                        f"it took longer than {self.download_seconds:g} s"
                    ) from None
                raise DownloadFailed(f"the download broke off ({exc})") from None
            if not data:
                if dog.fired:  # the shut socket reads as an end of file
                    raise DownloadFailed(f"it took longer than {self.download_seconds:g} s")
                return
            yield data

    def close(self) -> None:
        """End the downloads in flight at once and let the threads go."""
        with self._lock:
            dogs = list(self._watchdogs)
        for dog in dogs:
            dog.fire()
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _in_pool(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _take(self, *, download: bool) -> None:
        with self._lock:
            if self._threads == 0 or (download and self._downloads == 0):
                raise OutboundBusy
            self._threads -= 1
            self._downloads -= download

    def _give(self, *, download: bool) -> None:
        with self._lock:
            self._threads += 1
            self._downloads += download
