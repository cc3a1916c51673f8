"""Validation of a submit's ``input`` object: pure Python, no engine import.

The server is strict in what it accepts: an unknown or ill-typed parameter is refused at submit
time with a message that names it, so a job never fails minutes later on a typo. The output is
the normalised parameters the engine maps onto faster-whisper (``None`` = the default).
"""

from __future__ import annotations

import math
from typing import Any

from whispercli.protocol import SPEEDS, TASKS, WHISPER_PARAMS

# openai-whisper's tokenizer.LANGUAGES: Whisper's language codes and their names (OpenAI's
# verbose_json names the language).
LANGUAGE_NAMES = dict(
    pair.split(":")
    for pair in """en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french
    ja:japanese pt:portuguese tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish
    it:italian id:indonesian hi:hindi fi:finnish vi:vietnamese he:hebrew uk:ukrainian el:greek
    ms:malay cs:czech ro:romanian da:danish hu:hungarian ta:tamil no:norwegian th:thai ur:urdu
    hr:croatian bg:bulgarian lt:lithuanian la:latin mi:maori ml:malayalam cy:welsh sk:slovak
    te:telugu fa:persian lv:latvian bn:bengali sr:serbian az:azerbaijani sl:slovenian
    kn:kannada et:estonian mk:macedonian br:breton eu:basque is:icelandic hy:armenian
    ne:nepali mn:mongolian bs:bosnian kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi
    pa:punjabi si:sinhala km:khmer sn:shona yo:yoruba so:somali af:afrikaans oc:occitan
    ka:georgian be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic yi:yiddish lo:lao
    uz:uzbek fo:faroese ht:haitian_creole ps:pashto tk:turkmen nn:nynorsk mt:maltese
    sa:sanskrit lb:luxembourgish my:myanmar bo:tibetan tl:tagalog mg:malagasy as:assamese
    tt:tatar haw:hawaiian ln:lingala ha:hausa ba:bashkir jw:javanese su:sundanese
    yue:cantonese""".split()  # noqa: SIM905
)
LANGUAGES = frozenset(LANGUAGE_NAMES)

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
MAX_TEMPERATURES = 11
"""A temperature schedule (a list, or a start and an increment) holds at most this many:
Whisper's has 6 (0.0 to 1.0 by 0.2), every 0.1 makes 11."""
MAX_SUPPRESS_TOKENS = 1024
MAX_DECODE_WORK = 100
"""Hypotheses a job may have decoded per 30 s window at worst: ``beam_size`` x ``patience`` at
temperature 0, then ``best_of`` at each fallback temperature (Whisper's defaults: 5 + 5 x 5 =
30). Each window may be decoded that many times over; this caps what one job can cost."""
_DEFAULT_BEAM, _DEFAULT_BEST_OF = 5, 5
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
    if len(tokens) > MAX_SUPPRESS_TOKENS:
        raise ParamError(
            f"input parameter 'suppress_tokens' holds {len(tokens)} ids; at most "
            f"{MAX_SUPPRESS_TOKENS} are accepted"
        )
    return tokens


def check_token_ids(params: dict[str, Any], vocabulary: int) -> None:
    """Refuse token ids the model's vocabulary (``vocabulary`` tokens) does not have: they
    would index past its tables in native code."""
    tokens = params.get("suppress_tokens") or []
    beyond = [t for t in tokens if t >= vocabulary]
    if beyond:
        raise ParamError(
            f"input parameter 'suppress_tokens' holds {beyond[0]}, which is not a token id "
            f"of this model (its ids go from 0 to {vocabulary - 1}; -1 means the default set)"
        )


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
    _check_decode_work(params)
    return params


def temperature_count(params: dict[str, Any]) -> int:
    """How many temperatures the job's schedule holds (as ``plans.temperatures`` builds it)."""
    temperature = params.get("temperature")
    increment = params.get("temperature_increment_on_fallback")
    if isinstance(temperature, list):
        return len(temperature)
    if increment is None:
        return 1 if temperature is not None else 6
    start = 0.0 if temperature is None else float(temperature)
    return int((1.0 - start) / float(increment) + 1e-6) + 1


def decode_work(params: dict[str, Any]) -> float:
    """The hypotheses decoded per window at worst (see :data:`MAX_DECODE_WORK`)."""
    temperatures = temperature_count(params)
    temperature = params.get("temperature")
    first = temperature[0] if isinstance(temperature, list) else temperature or 0.0
    beam = params.get("beam_size") or _DEFAULT_BEAM
    best_of = params.get("best_of") or _DEFAULT_BEST_OF
    at_first = beam * max(1.0, params.get("patience") or 1.0) if first == 0 else best_of
    return at_first + best_of * (temperatures - 1)


def _check_decode_work(params: dict[str, Any]) -> None:
    count = temperature_count(params)
    if count > MAX_TEMPERATURES:
        raise ParamError(
            f"the temperature schedule holds {count} temperatures; at most {MAX_TEMPERATURES} "
            "are accepted (give fewer, or a larger 'temperature_increment_on_fallback')"
        )
    work = decode_work(params)
    if work > MAX_DECODE_WORK:
        raise ParamError(
            f"the input parameters ask for up to {work:g} hypotheses per 30-second window "
            f"(beam_size x patience, then best_of at each fallback temperature); at most "
            f"{MAX_DECODE_WORK} are accepted: use fewer temperatures or a smaller beam_size, "
            "best_of or patience"
        )


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


def check_model_can(
    params: dict[str, Any], model: str, english_only: bool, vocabulary: int | None = None
) -> None:
    """Refuse what the model cannot do: token ids beyond its ``vocabulary`` (when known) and,
    for an English-only model, another language or translation."""
    if vocabulary is not None:
        check_token_ids(params, vocabulary)
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
