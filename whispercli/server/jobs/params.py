"""Validation of a submit's ``input`` object: pure Python, no engine import.

The server is strict in what it accepts: an unknown or ill-typed parameter is refused at submit
time with a message that names it, so a job never fails minutes later on a typo. The output is
the normalised parameters the engine maps onto faster-whisper (``None`` = the default).
"""

from __future__ import annotations

import math
from typing import Any

from whispercli.protocol import SPEEDS, TASKS, WHISPER_PARAMS

# Whisper's language codes (openai-whisper's tokenizer.LANGUAGES keys).
LANGUAGES = frozenset(
    """af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw
    he hi hr ht hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my
    ne nl nn no oc pa pl ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt
    uk ur uz vi yi yo yue zh""".split()  # noqa: SIM905
)

# Inclusive numeric ranges; a parameter outside its range is refused.
_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 1.0),
    "temperature_increment_on_fallback": (0.0, 1.0),
    "beam_size": (1, 20),
    "best_of": (1, 20),
    "patience": (0.0, 10.0),
    "length_penalty": (0.0, 10.0),
    "no_speech_threshold": (0.0, 1.0),
    "compression_ratio_threshold": (0.0, 100.0),
    "logprob_threshold": (-100.0, 0.0),
}
_MAX_PROMPT_CHARS = 2000
_MAX_HOTWORDS_CHARS = 1000
"""A bound on what is stored and sent to the engine. faster-whisper prompts with at most 223
tokens of hotwords and drops the rest: 1000 characters of English are about 230 tokens of
Whisper's vocabulary, of names and jargon 350 to 550, so past this nothing more could count."""


class ParamError(ValueError):
    """An input parameter the server refuses; the message names it."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), f"a {type(value).__name__}"
    )


def _expected(types: tuple[type, ...]) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    words = [names.get(t, "a list") for t in types]
    if "an integer" in words and "a number" in words:
        words.remove("an integer")
    return " or ".join(dict.fromkeys(words))


def _has_type(value: Any, types: tuple[type, ...]) -> bool:
    # bool is a subclass of int in Python but not a number in JSON: keep them apart.
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _check_range(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ParamError(f"input parameter '{name}' must be a finite number")
    low, high = _RANGES[name]
    if not low <= value <= high:
        raise ParamError(f"input parameter '{name}' must be between {low:g} and {high:g}")


def _suppress_tokens(value: str | list[Any]) -> list[int]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            tokens = [int(p) for p in parts]
        except ValueError:
            raise ParamError(
                "input parameter 'suppress_tokens' must be a comma-separated list of token ids "
                'such as "-1" or "1,2"'
            ) from None
    else:
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
            raise ParamError("input parameter 'suppress_tokens' must be a list of integers")
        tokens = list(value)
    if any(t < -1 for t in tokens):
        raise ParamError("input parameter 'suppress_tokens' may hold -1 and token ids >= 0 only")
    return tokens


def validate_input(raw: Any) -> dict[str, Any]:
    """Check ``raw`` (the submit's ``input``) and return the normalised parameters."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParamError("'input' must be a JSON object of Whisper parameters")
    params: dict[str, Any] = {}
    for name, value in raw.items():
        types = WHISPER_PARAMS.get(name)
        if types is None:
            raise ParamError(
                f"unknown input parameter '{name}'; accepted: {', '.join(sorted(WHISPER_PARAMS))}"
            )
        if value is None:
            params[name] = None
            continue
        if not _has_type(value, types):
            raise ParamError(
                f"input parameter '{name}' must be {_expected(types)}, not {_type_name(value)}"
            )
        params[name] = _normalise(name, value)
    return params


def _normalise(name: str, value: Any) -> Any:
    if name == "temperature" and isinstance(value, list):
        if not value or not all(_has_type(t, (int, float)) for t in value):
            raise ParamError("input parameter 'temperature' must be a number or a list of numbers")
        for t in value:
            _check_range(name, float(t))
        return [float(t) for t in value]
    if name in _RANGES:
        _check_range(name, float(value))
        if name == "temperature_increment_on_fallback" and value == 0:
            raise ParamError("input parameter 'temperature_increment_on_fallback' must be > 0")
        if name == "patience" and value == 0:
            raise ParamError("input parameter 'patience' must be > 0")
        return value if name in ("beam_size", "best_of") else float(value)
    if name == "language":
        code = value.strip().lower()
        if code not in LANGUAGES:
            raise ParamError(
                "input parameter 'language' must be a Whisper language code such as 'en', "
                f"not {value!r}"
            )
        return code
    if name == "task" and value not in TASKS:
        raise ParamError(f"input parameter 'task' must be one of: {', '.join(TASKS)}")
    if name == "speed" and value not in SPEEDS:
        raise ParamError(f"input parameter 'speed' must be one of: {', '.join(SPEEDS)}")
    if name == "suppress_tokens":
        return _suppress_tokens(value)
    if name == "initial_prompt" and len(value) > _MAX_PROMPT_CHARS:
        raise ParamError(
            f"input parameter 'initial_prompt' is longer than {_MAX_PROMPT_CHARS} characters"
        )
    if name == "hotwords":
        return _hotwords(value)
    return value


def _hotwords(value: str) -> str:
    if not value.strip():
        raise ParamError(
            "input parameter 'hotwords' is blank; give the names or terms to expect, or omit it"
        )
    if len(value) > _MAX_HOTWORDS_CHARS:
        raise ParamError(
            f"input parameter 'hotwords' is longer than {_MAX_HOTWORDS_CHARS} characters; "
            "keep the names and terms this recording needs"
        )
    return value


def check_model_can(params: dict[str, Any], model: str, english_only: bool) -> None:
    """Refuse what an English-only model cannot do (another language, translation)."""
    if not english_only:
        return
    language = params.get("language")
    if language not in (None, "en"):
        raise ParamError(
            f"model '{model}' is English-only and cannot transcribe language '{language}'; "
            "use a multilingual model or omit 'language'"
        )
    if params.get("task") == "translate":
        raise ParamError(f"model '{model}' is English-only and cannot translate")
