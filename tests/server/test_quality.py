"""Whisper's confidence signals: the no-speech gate, and warnings on doubtful transcripts."""

from __future__ import annotations

from typing import Any

from whispercli.server.engine import quality


def seg(start: float, text: str = " Hello there.", **signals: float) -> dict[str, Any]:
    base = {
        "avg_logprob": -0.3,
        "temperature": 0.0,
        "no_speech_prob": 0.1,
        "compression_ratio": 1.3,
    }
    return {"start": start, "end": start + 2, "text": text, **base, **signals}


def test_gate_drops_what_whisper_calls_not_speech_and_loops() -> None:
    segments = [
        seg(0),
        seg(2, " Thank you.", no_speech_prob=0.94),
        seg(4, " Again."),
        seg(6, " again."),
        seg(8, " Again. "),
        seg(10, " Again."),
        seg(12),
    ]
    kept = list(quality.gate(segments))
    assert [s["start"] for s in kept] == [0, 4, 6, 12]


def test_confident_english_has_no_warning() -> None:
    assert quality.warnings([seg(0), seg(2)], 4.0, multilingual=False) == []


def test_low_confidence_names_a_multilingual_model_on_an_english_only_one() -> None:
    doubtful = [seg(0, avg_logprob=-1.1, temperature=1.0), seg(2, avg_logprob=-1.0)]
    [warning] = quality.warnings(doubtful, 4.0, multilingual=False)
    assert "low-confidence" in warning and "-1.05" in warning and "-m small" in warning
    [warning] = quality.warnings(doubtful, 4.0, multilingual=True)
    assert "English-only" not in warning
    # Temperature fallback over half of the speech is enough on its own...
    assert quality.warnings([seg(0, temperature=0.4), seg(2)], 4.0, multilingual=False)
    # ...unless the job asked for that temperature.
    fixed = [seg(0, temperature=0.4)]
    assert not quality.warnings(fixed, 2.0, multilingual=False, first_temperature=0.4)


def test_repeats_and_silence_are_warned_about() -> None:
    [warning] = quality.warnings([seg(0, compression_ratio=3.1)], 2.0, multilingual=False)
    assert "repeats itself" in warning
    assert quality.warnings([], 10.0, multilingual=False) == [
        "no speech was found in 10.0 s of audio"
    ]
    # However short (issue 19: a 0.3 s clip printed an empty line and no warning).
    assert quality.warnings([], 0.3, multilingual=False) == [
        "no speech was found in 0.3 s of audio"
    ]
