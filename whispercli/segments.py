"""Split long segments into sentence-sized ones using their word timings.

The chunked path (whispercli/server/engine/chunked.py) decodes each VAD chunk of up to 30 s as one
segment with timestamp tokens off, which keeps the sequential path's accuracy (sampling timestamp
tokens there costs 5-7 WER points on the bench set) but makes useless subtitle cues. With
``word_timestamps=True`` every word carries its own start and end, so the engine cuts the
chunk at sentence ends, long pauses, or failing those, at a length limit.
"""

from __future__ import annotations

from typing import Any

SENTENCE_END = (".", "?", "!")
CLAUSE_END = (",", ";", ":")
PAUSE_SECONDS = 0.8
"""A silence between two words this long ends a segment."""
MIN_SECONDS = 1.0
"""A sentence end closes a segment only once it is this long (avoids "Mr." fragments)."""
MAX_SECONDS = 12.0
"""Past this length a segment ends at the next clause end, or at any word after 1.5x."""


def _piece(template: dict[str, Any], words: list[dict[str, Any]]) -> dict[str, Any]:
    piece = {k: v for k, v in template.items() if k not in ("words", "tokens")}
    piece.update(
        start=round(float(words[0]["start"]), 3),
        end=round(float(words[-1]["end"]), 3),
        text="".join(w["word"] for w in words),
        words=words,
    )
    return piece


def _ends_here(run: list[dict[str, Any]], following: dict[str, Any] | None) -> bool:
    length = float(run[-1]["end"]) - float(run[0]["start"])
    text = run[-1]["word"].strip()
    if following is None:
        return True
    if following["start"] - run[-1]["end"] >= PAUSE_SECONDS:
        return True
    if text.endswith(SENTENCE_END) and length >= MIN_SECONDS:
        return True
    if length >= MAX_SECONDS and text.endswith(CLAUSE_END):
        return True
    return length >= 1.5 * MAX_SECONDS


def split_segment(segment: dict[str, Any]) -> list[dict[str, Any]]:
    """One segment with ``words`` -> consecutive segments (the same one if it has no words)."""
    words = segment.get("words") or []
    if not words:
        return [segment]
    pieces: list[dict[str, Any]] = []
    run: list[dict[str, Any]] = []
    for i, word in enumerate(words):
        run.append(word)
        following = words[i + 1] if i + 1 < len(words) else None
        if _ends_here(run, following):
            pieces.append(_piece(segment, run))
            run = []
    return pieces
