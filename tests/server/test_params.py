"""Validation of Whisper params (pure) and their mapping onto faster-whisper's transcribe()."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from server_helpers import SEED_INPUT

from whispercli.protocol import WHISPER_PARAMS
from whispercli.server.jobs.params import ParamError, check_model_can, validate_input


def test_seed_input_maps_onto_every_faster_whisper_argument() -> None:
    from faster_whisper import WhisperModel

    from whispercli.server.engine.plans import whisper_kwargs as transcribe_kwargs

    kwargs = transcribe_kwargs(validate_input(SEED_INPUT))
    assert kwargs == {
        "no_speech_threshold": 0.6,
        "patience": 1.0,
        "suppress_tokens": [-1],
        "compression_ratio_threshold": 2.4,
        "language": "en",
        "log_prob_threshold": -1.0,
        "condition_on_previous_text": True,
        "task": "transcribe",
        "temperature": pytest.approx((0.0, 0.2, 0.4, 0.6, 0.8, 1.0)),
        "beam_size": 5,
        "best_of": 5,
    }
    accepted = inspect.signature(WhisperModel.transcribe).parameters
    assert set(kwargs) <= set(accepted)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"temperature": 0.5}, 0.5),
        ({"temperature": [0, 0.5]}, (0.0, 0.5)),
        ({"temperature": 0.4, "temperature_increment_on_fallback": 0.3}, (0.4, 0.7, 1.0)),
        ({"temperature_increment_on_fallback": 0.5}, (0.0, 0.5, 1.0)),
        ({"temperature": None}, None),
    ],
)
def test_temperature_schedule(params: dict[str, object], expected: object) -> None:
    from whispercli.server.engine.plans import temperatures

    got = temperatures(validate_input(params))
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_every_protocol_param_is_handled() -> None:
    from whispercli.server.engine.plans import whisper_kwargs as transcribe_kwargs

    sample = {
        "language": "en", "task": "translate", "temperature": 0.2,
        "temperature_increment_on_fallback": 0.4, "beam_size": 2, "best_of": 3,
        "patience": 1.5, "length_penalty": 0.5, "no_speech_threshold": 0.5,
        "compression_ratio_threshold": 2.0, "logprob_threshold": -0.5,
        "condition_on_previous_text": False, "initial_prompt": "Hello.", "hotwords": "Siobhan",
        "suppress_tokens": [1, 2], "word_timestamps": True, "vad_filter": True,
        "speed": "fast", "no_speech_gate": False,
    }  # fmt: skip
    assert set(sample) == set(WHISPER_PARAMS)
    kwargs = transcribe_kwargs(validate_input(sample))
    assert kwargs["log_prob_threshold"] == -0.5 and "logprob_threshold" not in kwargs
    assert kwargs["suppress_tokens"] == [1, 2] and kwargs["initial_prompt"] == "Hello."
    assert kwargs["word_timestamps"] is True and kwargs["vad_filter"] is True
    assert kwargs["hotwords"] == "Siobhan"
    assert "no_speech_gate" not in kwargs  # the engine's own (engine.gate_on)


@pytest.mark.parametrize(
    ("value", "tokens"), [("-1", [-1]), ("1,2", [1, 2]), (" 3 , 4 ", [3, 4]), ("", []), ([5], [5])]
)
def test_suppress_tokens_forms(value: object, tokens: list[int]) -> None:
    assert validate_input({"suppress_tokens": value})["suppress_tokens"] == tokens


@pytest.mark.parametrize(
    "params",
    [
        {"beam_size": 21},
        {"best_of": -1},
        {"patience": 0},
        {"temperature": 1.5},
        {"temperature": []},
        {"temperature_increment_on_fallback": 0},
        {"logprob_threshold": 1},
        {"initial_prompt": "x" * 5000},
        {"hotwords": "x" * 1001},
        {"speed": "ludicrous"},
        {"vad_filter": "yes"},
        {"word_timestamps": 0},
        {"suppress_tokens": "-2"},
    ],
)
def test_out_of_range_or_ill_typed_is_refused(params: dict[str, object]) -> None:
    with pytest.raises(ParamError) as err:
        validate_input(params)
    assert f"'{next(iter(params))}'" in str(err.value)


def test_input_must_be_an_object_and_none_means_defaults() -> None:
    assert validate_input(None) == {}
    assert validate_input({"beam_size": None}) == {"beam_size": None}
    with pytest.raises(ParamError):
        validate_input(["beam_size"])


def test_english_only_models() -> None:
    check_model_can({"language": "en"}, "tiny", english_only=True)
    check_model_can({"language": "fr", "task": "translate"}, "small", english_only=False)
    with pytest.raises(ParamError, match="English-only"):
        check_model_can({"language": "fr"}, "tiny", english_only=True)
    with pytest.raises(ParamError, match="cannot translate"):
        check_model_can({"task": "translate"}, "tiny.en", english_only=True)


def test_validation_does_not_import_the_engine() -> None:
    code = (
        "import sys; import whispercli.server.jobs.params, whispercli.server.jobs.models; "
        "print(sorted(m for m in ('faster_whisper', 'ctranslate2', 'numpy', 'av') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_model_lookup(tmp_path: object) -> None:
    from pathlib import Path

    from whispercli.server.jobs import models

    root = Path(str(tmp_path))
    (root / "small.en").mkdir()
    (root / "small.en" / "model.bin").write_bytes(b"")
    (root / "empty").mkdir()
    assert models.resolve("tiny", None) is not None
    info = models.resolve("small.en", root)
    assert info is not None and info.english_only and info.path == root / "small.en"
    assert models.resolve("empty", root) is None
    assert models.resolve("../small.en", root) is None
    assert models.installed(root) == ["small.en", "tiny", "tiny.en"]
