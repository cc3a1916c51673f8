"""A deterministic stand-in for the engine, for scheduling tests and the scale benchmark.

Chosen by ``WHISPERCLI_FAKE_ENGINE_SECONDS=N`` (ServerSettings.fake_engine_seconds): each job
sleeps N seconds in ten progress ticks and returns a fixed transcript, so throughput is not
capped by the cores. An upload whose bytes start with ``CRASH`` kills the engine process, as a
poison file would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

TEXT = " The fake engine heard this."
TICKS = 10
POISON = b"CRASH"


class FakeEngine:
    def __init__(self, model_path: str, *, seconds: float) -> None:
        self.model_path = model_path
        self.seconds = seconds

    def transcribe(
        self, path: str, params: dict[str, Any], on_segment: Callable[[dict[str, Any], float], None]
    ) -> dict[str, Any]:
        with open(path, "rb") as fh:
            if fh.read(len(POISON)) == POISON:
                os._exit(70)  # what a decoder crash on a poison file looks like
        step = self.seconds / TICKS
        segments = []
        for i in range(TICKS):
            time.sleep(step)
            segment = {"id": i, "start": i * step, "end": (i + 1) * step, "text": TEXT}
            segments.append(segment)
            on_segment(segment, (i + 1) / TICKS)
        return {
            "text": TEXT * TICKS,
            "segments": segments,
            "language": "en",
            "duration": self.seconds,
        }
