"""A chunk decoded again in halves (engine.decode's rescue), with a fake decode: no model."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from whispercli.server.engine import decode
from whispercli.server.engine.decode import BatchDecoder
from whispercli.server.engine.speech import Chunk, Span

SECOND = 16000


def spoken(spans: int, seconds: float) -> Chunk:
    """A chunk of ``spans`` spans of ``seconds`` each, 1 s apart in the file."""
    size = int(seconds * SECOND)
    edges = tuple(Span(i * (size + SECOND), i * (size + SECOND) + size) for i in range(spans))
    return Chunk(0, np.zeros(size * spans, np.float32), edges)


def words_over(chunk: Chunk, upto: int) -> list[dict[str, Any]]:
    """One segment whose words cover the first ``upto`` spans of ``chunk`` (file times)."""
    words = [
        {"start": s.start / SECOND, "end": s.end / SECOND, "word": f" w{i}", "probability": 1.0}
        for i, s in enumerate(chunk.spans[:upto])
    ]
    return [{"text": "".join(w["word"] for w in words), "words": words}]


@pytest.mark.parametrize(("apart", "calls"), [(True, 3), (False, 2)])
def test_a_chunk_cut_short_is_decoded_again_in_halves_on_two_replicas_at_once(
    monkeypatch: pytest.MonkeyPatch, apart: bool, calls: int
) -> None:
    """apart (several replicas): each half in a call of its own, both in flight together (a
    barrier of two would time out otherwise); one replica: both halves in one call."""
    chunk = spoken(4, 3.0)  # 12 s of speech; the first decode's words stop after 3 s of it
    together = threading.Barrier(2, timeout=5)
    seen: list[list[int]] = []

    def fake(self: BatchDecoder, setup: Any, chunks: Sequence[Chunk]) -> list[Any]:
        seen.append([len(c.spans) for c in chunks])
        if len(chunks) == 1 and chunks[0].half:
            together.wait()
        whole = chunks[0] is chunk
        return [words_over(c, 1 if whole else len(c.spans)) for c in chunks]

    monkeypatch.setattr(BatchDecoder, "_decode", fake)
    segments = BatchDecoder(None, apart=apart).decode(None, [chunk])[0]  # type: ignore[arg-type]
    assert len(seen) == calls and seen[0] == [4]
    assert sorted(n for call in seen[1:] for n in call) == [2, 2]  # the two halves, once each
    words = [w["word"] for seg in segments for w in seg["words"]]
    assert words == [" w0", " w1", " w0", " w1"]  # the halves' words, in time order
    assert decode.RESCUE_TAIL_SECONDS <= 9.0  # the 9 s left behind is past the threshold
