"""Watch a server under attack: its peak memory and how slowly it answers its health check."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import requests
from support.procs import rss_mib


class Watch:
    """While the block runs: the peak RSS of process ``pid`` (and of the child ``engine()``
    names, when given), and the slowest of the ``health_url`` calls made every 0.1 s (a call
    that never came back counts as its ``timeout``)."""

    def __init__(
        self,
        pid: int,
        health_url: str,
        headers: dict[str, str],
        *,
        engine: Callable[[], int | None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.pid, self.health_url, self.headers = pid, health_url, headers
        self.engine, self.timeout = engine, timeout
        self.base = self.peak = rss_mib(pid)
        self.engine_peak = 0.0
        self.worst_health = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            engine = self.engine() if self.engine else None
            if engine:
                self.engine_peak = max(self.engine_peak, rss_mib(engine))
            started = time.monotonic()
            with contextlib.suppress(requests.RequestException):
                requests.get(self.health_url, headers=self.headers, timeout=self.timeout)
            self.worst_health = max(self.worst_health, time.monotonic() - started)
            self._stop.wait(0.1)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 10)

    @property
    def growth(self) -> float:
        """MiB the process grew by at its peak."""
        return self.peak - self.base
