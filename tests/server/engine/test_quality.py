"""Whisper's confidence signals: the no-speech gate, and warnings on doubtful transcripts."""

from __future__ import annotations

from typing import Any

import pytest

from whispercli.server.engine import quality


def seg(start: float, text: str = " Hello there.", **signals: float) -> dict[str, Any]:
    base = {
        "avg_logprob": -0.3,
        "temperature": 0.0,
        "no_speech_prob": 0.1,
        "compression_ratio": 1.3,
    }
    return {"start": start, "end": start + 2, "text": text, **base, **signals}


ENGLISH = [
    seg(0, " Thanks, everyone, for joining the call.", avg_logprob=-0.6),
    seg(2, " Before we start, a quick reminder about the budget.", avg_logprob=-0.5),
]


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
    dropped: list[dict[str, Any]] = []
    kept = list(quality.gate(segments, dropped))
    assert [s["start"] for s in kept] == [0, 4, 6, 12]
    assert [s["start"] for s in dropped] == [2, 8, 10]
    assert [s["start"] for s in quality.gate(segments)] == [0, 4, 6, 12]


def test_confident_english_has_no_warning() -> None:
    assert quality.warnings([seg(0), seg(2)], 4.0, multilingual=False) == []
    assert quality.warnings(ENGLISH, 4.0, multilingual=False, speech=4.2) == []


def test_one_weak_signal_alone_is_no_warning() -> None:
    """English read by an odd voice scores down to -0.94 here: no single signal decides."""
    assert not quality.warnings([seg(0, avg_logprob=-0.95)], 2.0, multilingual=False)
    assert not quality.warnings([seg(0, no_speech_prob=0.6)], 2.0, multilingual=False)
    looped = [seg(0, " five of clubs, five of clubs, five of clubs")]
    assert not quality.warnings(looped, 2.0, multilingual=False)


def test_low_confidence_names_a_multilingual_model_on_an_english_only_one() -> None:
    doubtful = [seg(0, avg_logprob=-1.1, temperature=1.0), seg(2, avg_logprob=-1.0)]
    [warning] = quality.warnings(doubtful, 4.0, multilingual=False)
    assert "low-confidence" in warning and "-1.05" in warning and "-m small" in warning
    assert "temperature fallback on 50% of the speech" in warning
    [warning] = quality.warnings(doubtful, 4.0, multilingual=True)
    assert "English-only" not in warning and "medium" in warning


def test_french_as_this_cpu_decodes_it_is_low_confidence() -> None:
    """The clip of tests/cli/test_cli_warnings.py on a CPU with AVX-512: no fallback, -0.85
    (the threshold of -0.9 missed it), but Whisper half thinks it is no speech and loops."""
    french = [
        seg(0, " I'm going to see you next time.", avg_logprob=-0.85, no_speech_prob=0.57),
        seg(2, " I'm going to see you next time.", avg_logprob=-0.85, no_speech_prob=0.57),
    ]
    [warning] = quality.warnings(french, 7.2, multilingual=False, speech=7.0)
    assert "low-confidence" in warning and "no-speech probability 0.57" in warning
    assert "repeated phrases" in warning and "-m small" in warning


def test_temperature_fallback_counts_from_the_jobs_first_temperature() -> None:
    hot = [seg(0, avg_logprob=-0.9, temperature=0.4), seg(2, avg_logprob=-0.9, temperature=1)]
    assert quality.warnings(hot, 4.0, multilingual=False)
    assert not quality.warnings(hot[:1], 2.0, multilingual=False, first_temperature=0.4)


@pytest.mark.parametrize("signal", ["logprob", "fallback", "no_speech", "repetition"])
def test_each_signal_raises_the_score(signal: str) -> None:
    base = quality.Signals(logprob=-0.8, fallback=0, no_speech=0.3, repetition=0, unheard=0)
    values = {"logprob": -1.1, "fallback": 1.0, "no_speech": 0.6, "repetition": 0.4}
    worse = quality.Signals(**{**base.__dict__, signal: values[signal]})
    assert worse.score() > base.score()


def test_speech_whisper_skipped_is_low_confidence_not_silence() -> None:
    """Whisper skips a window it calls silence; the VAD heard speech there: not English?"""
    [warning] = quality.warnings([], 4.5, multilingual=False, speech=4.0)
    assert "low-confidence" in warning and "4.0 s" in warning and "-m small" in warning
    # The gate dropped every segment as not speech: the same.
    gated = [seg(0, " Thank you.", no_speech_prob=0.9, avg_logprob=-0.9)]
    [warning] = quality.warnings([], 2.0, multilingual=False, dropped=gated, speech=2.0)
    assert "low-confidence" in warning
    # Not from under a second of speech (the VAD pads what it finds).
    assert quality.warnings([], 0.6, multilingual=False, speech=0.6) == [
        "no speech was found in 0.6 s of audio"
    ]
    # Whisper kept 2 s of 9 s of speech.
    [warning] = quality.warnings([seg(0)], 4.0, multilingual=False, speech=9.0)
    assert "skipped as silence" in warning


def test_repeats_and_silence_are_warned_about() -> None:
    [warning] = quality.warnings([seg(0, compression_ratio=3.1)], 2.0, multilingual=False)
    assert "repeats itself" in warning
    assert quality.warnings([], 10.0, multilingual=False) == [
        "no speech was found in 10.0 s of audio"
    ]
    assert quality.warnings([], 10.0, multilingual=False, speech=0.0) == [
        "no speech was found in 10.0 s of audio"
    ]
    # However short (issue 19: a 0.3 s clip printed an empty line and no warning).
    assert quality.warnings([], 0.3, multilingual=False) == [
        "no speech was found in 0.3 s of audio"
    ]
