"""Cutting whole-chunk segments into sentence-sized ones by their word timings."""

from __future__ import annotations

from typing import Any

from whispercli.segments import MAX_SECONDS, split_segment


def _words(*items: tuple[str, float, float]) -> list[dict[str, Any]]:
    return [{"word": w, "start": s, "end": e, "probability": 0.9} for w, s, e in items]


def _segment(words: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": 0,
        "start": words[0]["start"],
        "end": words[-1]["end"],
        "text": "".join(w["word"] for w in words),
        "tokens": [1, 2, 3],
        "avg_logprob": -0.2,
        "words": words,
    }


def test_cuts_at_sentence_ends_and_keeps_every_word_in_order() -> None:
    words = _words(
        (" Hello", 0.0, 0.5), (" there.", 0.5, 1.2), (" How", 1.3, 1.5),
        (" are", 1.5, 1.7), (" you?", 1.7, 2.4), (" Fine", 2.5, 2.9), (" thanks", 2.9, 3.5),
    )  # fmt: skip
    pieces = split_segment(_segment(words))
    assert [p["text"] for p in pieces] == [" Hello there.", " How are you?", " Fine thanks"]
    assert [(p["start"], p["end"]) for p in pieces] == [(0.0, 1.2), (1.3, 2.4), (2.5, 3.5)]
    assert all("tokens" not in p and p["avg_logprob"] == -0.2 for p in pieces)


def test_a_short_sentence_end_does_not_cut_but_a_long_pause_does() -> None:
    words = _words(
        (" Mr.", 0.0, 0.3), (" Smith", 0.3, 0.8), (" left", 0.8, 1.2), (" now", 2.5, 3.0)
    )
    pieces = split_segment(_segment(words))
    assert [p["text"] for p in pieces] == [" Mr. Smith left", " now"]


def test_long_runs_end_at_a_clause_or_a_hard_limit() -> None:
    words = _words(*[(f" w{i}{',' if i == 30 else ''}", i * 0.5, i * 0.5 + 0.4) for i in range(80)])
    pieces = split_segment(_segment(words))
    assert pieces[0]["text"].endswith("w30,")
    assert all(p["end"] - p["start"] <= 1.5 * MAX_SECONDS + 0.5 for p in pieces)
    assert "".join(p["text"] for p in pieces) == _segment(words)["text"]


def test_a_segment_without_words_is_left_alone() -> None:
    seg = {"id": 3, "start": 0.0, "end": 20.0, "text": " whole chunk"}
    assert split_segment(seg) == [seg]
