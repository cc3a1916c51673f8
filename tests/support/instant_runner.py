"""A runner for the app in-process (``create_app(settings, store=..., runner=...)``) that needs no
engine: it ends every job as soon as it is queued, with a fixed result (or the failure, or the
cancel, a test sets), so the routers and the job service run without a subprocess."""

from __future__ import annotations

from typing import Any

from whispercli.protocol import Status
from whispercli.server.storage.store import Store

RESULT = {"text": " fixed text", "segments": [], "language": "en", "duration": 1.0}


class InstantRunner:
    """Finishes every job as soon as it is queued: with ``result``, or failed with ``error``,
    or cancelled when ``status`` says so."""

    busy = False
    device = None

    @property
    def loaded_paths(self) -> list[str]:
        return []

    def __init__(self, store: Store) -> None:
        self.store = store
        self.started = self.stopped = False
        self.status = Status.SUCCESS
        self.result: dict[str, Any] = RESULT
        self.error: str | None = None

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def wake(self) -> None:
        job = self.store.claim_next()
        if job is None:
            return
        if self.status == Status.SUCCESS:
            self.store.finish(job.id, job.attempts, self.status, result=self.result)
        else:
            self.store.finish(job.id, job.attempts, self.status, error=self.error)
