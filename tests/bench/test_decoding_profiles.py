"""whispercli.server.engine.plans: profiles and the plan the engine follows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from whispercli.protocol import SPEEDS
from whispercli.server.engine import plans as decoding


def test_every_protocol_speed_is_a_profile() -> None:
    assert set(SPEEDS) == set(decoding.SPEEDS)
    assert decoding.DEFAULT_SPEED in decoding.SPEEDS


SEED = decoding.Plan({"beam_size": 5, "vad_filter": False})
"""The seed's decoding: Whisper's sequential beam 5 on the whole audio (the no-speech gate,
quality.Gate, still drops what Whisper calls silence)."""


def test_accurate_is_the_seed_behaviour_whatever_the_duration() -> None:
    for seconds in (None, 5.0, 600.0, 3600.0):
        assert decoding.plan("accurate", {}, seconds) == SEED


def test_vad_is_off_for_accurate_on_for_other_sequential_jobs_and_a_job_can_choose() -> None:
    assert decoding.plan("accurate", {"vad_filter": True}, 60.0).kwargs["vad_filter"] is True
    fallback = decoding.plan("default", {"condition_on_previous_text": False}, 60.0)
    assert not fallback.chunked and fallback.kwargs["vad_filter"] is True
    assert not decoding.plan("default", {"vad_filter": False}, 600.0).chunked


def test_default_chunks_every_length_with_full_windows_for_long_audio() -> None:
    profile = decoding.SPEEDS["default"]
    long = decoding.plan("default", {}, decoding.WINDOW_SECONDS + 60)
    assert long.chunked and long.encoder_padding is None  # the batched pipeline's windows
    assert long.kwargs["beam_size"] == profile.beam_size == 5
    # Chunks are decoded without timestamp tokens, with word timings for the sentence cuts.
    assert long.kwargs["without_timestamps"] is True
    assert long.kwargs["word_timestamps"] is True
    assert "vad_filter" not in long.kwargs  # the chunker is the VAD
    assert decoding.plan("default", {}, None).encoder_padding is None  # unknown: full windows


def test_short_audio_gets_an_encoder_window_sized_to_it() -> None:
    """A 3 s clip does not pay for a 30 s window: chunk + SHORT_PADDING, at least
    MIN_WINDOW_SECONDS (decode.window_frames)."""
    for speed in ("default", "fast"):
        for seconds in (1.0, 11.4, 29.9):
            short = decoding.plan(speed, {}, seconds)
            assert short.chunked and short.encoder_padding == decoding.SHORT_PADDING
    assert decoding.MIN_WINDOW_SECONDS >= 10.0


def test_fast_sizes_every_window_and_uses_a_smaller_beam() -> None:
    for seconds in (2.0, 11.4, 600.0):
        fast = decoding.plan("fast", {}, seconds)
        assert fast.chunked
        assert fast.encoder_padding is not None and fast.encoder_padding >= 1.0
    assert (
        decoding.plan("fast", {}, 600.0).kwargs["beam_size"]
        < decoding.plan("default", {}, 600.0).kwargs["beam_size"]
    )


def test_word_timings_stay_on_in_chunks_even_when_a_job_turns_them_off() -> None:
    """The engine needs them to cut segments; it drops them from the result itself."""
    assert decoding.plan("default", {"word_timestamps": False}, 600.0).kwargs["word_timestamps"]
    assert decoding.plan("accurate", {"word_timestamps": False}, 600.0).kwargs == {
        "beam_size": 5,
        "word_timestamps": False,
        "vad_filter": False,
    }


def test_none_profile_means_default() -> None:
    assert decoding.plan(None, {}, 300.0) == decoding.plan("default", {}, 300.0)


def test_job_speed_param_beats_the_server_setting() -> None:
    assert decoding.plan("fast", {"speed": "accurate"}, 300.0) == SEED


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="accurate, default, fast"):
        decoding.plan("turbo", {}, 10.0)


def test_explicit_params_win_over_the_profile() -> None:
    plan = decoding.plan("fast", {"beam_size": 5, "language": "en"}, 300.0)
    assert plan.chunked
    assert plan.kwargs["beam_size"] == 5
    assert plan.kwargs["language"] == "en"


def test_protocol_params_are_mapped_to_faster_whisper_names() -> None:
    params = {
        "logprob_threshold": -0.5,
        "suppress_tokens": [-1],
        "initial_prompt": "Glossary:",
        "speed": "accurate",
        "task": None,
    }
    kwargs = decoding.plan(None, params, 10.0).kwargs
    assert kwargs["log_prob_threshold"] == -0.5
    assert "logprob_threshold" not in kwargs
    assert kwargs["suppress_tokens"] == [-1]
    assert kwargs["initial_prompt"] == "Glossary:"
    assert "speed" not in kwargs and "task" not in kwargs


@pytest.mark.parametrize(
    ("params", "schedule"),
    [
        ({}, None),
        ({"temperature": 0.3}, 0.3),
        ({"temperature": [0.0, 0.5]}, (0.0, 0.5)),
        ({"temperature_increment_on_fallback": 0.25}, (0.0, 0.25, 0.5, 0.75, 1.0)),
        ({"temperature": 0.2, "temperature_increment_on_fallback": 0.4}, (0.2, 0.6, 1.0)),
        (
            {"temperature": 0, "temperature_increment_on_fallback": 0.2},
            (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        ),
    ],
)
def test_temperature_schedule(params: dict, schedule: object) -> None:
    assert decoding.temperatures(params) == schedule


@pytest.mark.parametrize(
    "params",
    [
        {"condition_on_previous_text": False},
        {"compression_ratio_threshold": 3.0},
        {"no_speech_threshold": 0.3},
        {"temperature_increment_on_fallback": 0.1},
        {"temperature": [0.0, 0.5]},
        {"vad_filter": False},
    ],
)
def test_sequential_only_requests_are_honoured_sequentially(params: dict) -> None:
    plan = decoding.plan("default", params, 600.0)
    assert not plan.chunked
    assert "batch_size" not in plan.kwargs


def test_seed_params_at_whisper_defaults_still_allow_batching() -> None:
    """The seed client sends every param at Whisper's default; that must not cost the speed-up."""
    seed = {
        "temperature": 0,
        "temperature_increment_on_fallback": 0.2,
        "beam_size": 5,
        "best_of": 5,
        "no_speech_threshold": 0.6,
        "compression_ratio_threshold": 2.4,
        "logprob_threshold": -1.0,
        "condition_on_previous_text": True,
        "suppress_tokens": [-1],
    }
    plan = decoding.plan("default", seed, 600.0)
    assert plan.chunked
    assert plan.kwargs["beam_size"] == 5  # explicit: wins over the profile's beam


def test_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, whispercli.server.engine.plans; "
        "print(sorted(m for m in ('numpy', 'faster_whisper', 'ctranslate2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
