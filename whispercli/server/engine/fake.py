"""A deterministic stand-in for the engine, for scheduling tests and the scale benchmark.

Chosen by ``WHISPERCLI_FAKE_ENGINE_SECONDS=N`` (ServerSettings.fake_engine_seconds): each job
spends N seconds in ten progress ticks and returns a fixed transcript, so throughput is not
capped by the cores. Jobs run side by side, as the real engine's do. An upload whose bytes
start with ``CRASH`` kills the engine process, as a poison file would; one starting ``BROKEN``
fails its own job only, as an undecodable upload does.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from whispercli.server.engine.outcome import AudioError, JobCancelled, JobSink

TEXT = " The fake engine heard this."
TICKS = 10
POISON = b"CRASH"
BROKEN = b"BROKEN"


class FakeEngine:
    def __init__(self, model_path: str, *, seconds: float) -> None:
        self.model_path = model_path
        self.seconds = seconds
        self._cancelled: dict[str, threading.Event] = {}

    def start(self, job_id: str, path: str, params: dict[str, Any], sink: JobSink) -> None:
        self._cancelled[job_id] = threading.Event()
        threading.Thread(target=self._run, args=(job_id, path, sink), daemon=True).start()

    def cancel(self, job_id: str) -> None:
        if job_id in self._cancelled:
            self._cancelled[job_id].set()

    def close(self) -> None:
        """Nothing to stop (each job has its own thread)."""

    def _run(self, job_id: str, path: str, sink: JobSink) -> None:
        try:
            with open(path, "rb") as fh:
                head = fh.read(len(BROKEN))
        except OSError as exc:  # its worker dropped the job (stopping) and removed the file
            sink.done(None, AudioError(f"could not read the upload (fake): {exc}"))
            return
        if head.startswith(POISON):
            os._exit(70)  # what a decoder crash on a poison file looks like
        if head.startswith(BROKEN):
            sink.done(None, AudioError("could not decode the upload as audio (fake)"))
            return
        step = self.seconds / TICKS
        segments = []
        cancelled = self._cancelled[job_id]
        for i in range(TICKS):
            if cancelled.wait(step):
                sink.done(None, JobCancelled(job_id))
                return
            segment = {"id": i, "start": i * step, "end": (i + 1) * step, "text": TEXT}
            segments.append(segment)
            sink.segment(segment, (i + 1) / TICKS)
        self._cancelled.pop(job_id, None)
        sink.done(
            {
                "text": TEXT * TICKS,
                "segments": segments,
                "language": "en",
                "duration": self.seconds,
            },
            None,
        )
