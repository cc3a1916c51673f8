"""whispercli.decoding: profiles and the plan the engine follows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from whispercli import decoding
from whispercli.protocol import SPEEDS


def test_every_protocol_speed_is_a_profile() -> None:
    assert set(SPEEDS) == set(decoding.PROFILES)
    assert decoding.DEFAULT_PROFILE in decoding.PROFILES


def test_accurate_is_the_seed_behaviour_whatever_the_duration() -> None:
    for seconds in (None, 5.0, 600.0, 3600.0):
        assert decoding.plan("accurate", {}, seconds) == (False, {"beam_size": 5})


@pytest.mark.parametrize("name", ["default", "fast"])
def test_long_audio_goes_batched_and_short_audio_sequential(name: str) -> None:
    profile = decoding.PROFILES[name]
    assert profile.batched_min_seconds is not None
    long_batched, long_kwargs = decoding.plan(name, {}, profile.batched_min_seconds + 60)
    assert long_batched
    assert long_kwargs["batch_size"] == profile.batch_size
    assert long_kwargs["beam_size"] == profile.beam_size
    short_batched, short_kwargs = decoding.plan(name, {}, profile.batched_min_seconds - 1)
    assert not short_batched
    assert "batch_size" not in short_kwargs
    assert short_kwargs["beam_size"] == dict(profile.sequential).get("beam_size", profile.beam_size)
    assert decoding.plan(name, {}, None)[0] is False  # unknown duration: the safe path


def test_default_is_accurate_on_short_audio_and_keeps_beam_search_on_long() -> None:
    """Short files must not get slower or worse: the default plans them like "accurate"."""
    for seconds in (1.0, 11.4, 29.9, None):
        assert decoding.plan("default", {}, seconds) == decoding.plan("accurate", {}, seconds)
    assert decoding.plan("default", {}, 600.0)[1]["beam_size"] >= 4
    fast_beam = decoding.plan("fast", {}, 600.0)[1]["beam_size"]
    assert fast_beam < decoding.plan("default", {}, 600.0)[1]["beam_size"]


def test_none_profile_means_default() -> None:
    assert decoding.plan(None, {}, 300.0) == decoding.plan("default", {}, 300.0)


def test_job_speed_param_beats_the_server_setting() -> None:
    assert decoding.plan("fast", {"speed": "accurate"}, 300.0) == (False, {"beam_size": 5})


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="accurate, default, fast"):
        decoding.plan("turbo", {}, 10.0)


def test_explicit_params_win_over_the_profile() -> None:
    batched, kwargs = decoding.plan("fast", {"beam_size": 5, "language": "en"}, 300.0)
    assert batched
    assert kwargs["beam_size"] == 5
    assert kwargs["language"] == "en"


def test_protocol_params_are_mapped_to_faster_whisper_names() -> None:
    params = {
        "logprob_threshold": -0.5,
        "suppress_tokens": [-1],
        "initial_prompt": "Glossary:",
        "speed": "accurate",
        "task": None,
    }
    _, kwargs = decoding.plan(None, params, 10.0)
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
    batched, kwargs = decoding.plan("default", params, 600.0)
    assert not batched
    assert "batch_size" not in kwargs


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
    batched, kwargs = decoding.plan("default", seed, 600.0)
    assert batched
    assert kwargs["beam_size"] == 5  # explicit: wins over the profile's beam


def test_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, whispercli.decoding; "
        "print(sorted(m for m in ('numpy', 'faster_whisper', 'ctranslate2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("timestamps", [True, False])
def test_batched_timestamps_follow_the_profile(
    monkeypatch: pytest.MonkeyPatch, timestamps: bool
) -> None:
    profile = decoding.Profile(beam_size=4, batched_min_seconds=30.0, batched_timestamps=timestamps)
    monkeypatch.setitem(decoding.PROFILES, "default", profile)
    batched, kwargs = decoding.plan("default", {}, 60.0)
    assert batched
    assert kwargs["without_timestamps"] is (not timestamps)
    assert "without_timestamps" not in decoding.plan("default", {}, 10.0)[1]
