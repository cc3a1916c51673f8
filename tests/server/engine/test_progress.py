"""Progress of a long job on every speed: it moves while the job runs, and segments come early."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from support.protocol import poll, submit, upload
from support.servers import Server

pytestmark = pytest.mark.slow


def watch(server: Server, job: dict[str, object]) -> list[tuple[float, float, int]]:
    """(seconds since processing began, progress, partial segments) of every poll until done."""
    seen: list[tuple[float, float, int]] = []
    began: float | None = None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        body = poll(server, job)
        if body["status"] in ("success", "failed", "cancelled"):
            assert body["status"] == "success", body
            assert began is not None, "the job was never seen processing"
            seen.append((time.monotonic() - began, 1.0, len(body["result"]["segments"])))
            return seen
        if body["status"] == "processing":
            began = began if began is not None else time.monotonic()
            seen.append((time.monotonic() - began, body["progress"], len(body["segments"])))
        time.sleep(0.1)
    raise AssertionError("job did not finish")


@pytest.mark.parametrize("speed", ["default", "fast", "accurate"])
def test_progress_moves_while_a_long_file_transcribes(
    server: Server, long_clip: Path, speed: str
) -> None:
    seen = watch(server, submit(server, upload(server, long_clip), {"speed": speed}))
    total = seen[-1][0]
    moving = sorted({p for _, p, _ in seen if 0 < p < 1})
    assert len(moving) >= 3, f"progress took the values {moving} in {total:.1f} s"
    # Ticks at least every ~2 s of wall time once the first estimate is in.
    changes = [t for (t, p, _), (_, q, _) in itertools.pairwise(seen) if q != p]
    gaps = [b - a for a, b in itertools.pairwise(changes)]
    assert gaps and max(gaps[1:] or gaps) < 0.4 * total, f"progress changed at {changes}"
    # Segments arrive while the job runs (the first batch is one chunk: test_chunked).
    first = next((t for t, _, n in seen[:-1] if n > 0), None)
    assert first is not None and first < 0.8 * total, f"first segments at {first} of {total}"
