"""OpenAI's audio API shapes, as the ``openai`` SDK sends and parses them: the multipart form of
``/v1/audio/transcriptions`` and ``/v1/audio/translations``, the bodies of every
``response_format``, the server-sent events of ``stream=true``, ``/v1/models`` and the error
shape ``{"error": {"message", "type", "param", "code"}}``.

Pure functions: a form's fields in, our job's Whisper parameters out; our job's result back into
OpenAI's bodies (``text``, ``srt`` and ``vtt`` are whispercli.formats' writers, byte for byte).
The router (server/api/openai.py) does the HTTP and the job.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import whispercli.formats as formats
from whispercli.protocol import (
    INVALID_FILE_CODE,
    JOB_CANCELLED_CODE,
    JOB_FAILED_CODE,
    WHISPER_PARAMS,
    Result,
)
from whispercli.server.jobs.params import LANGUAGE_NAMES

WHISPER_1 = "whisper-1"
"""OpenAI's model name; an alias of the server's default model here."""
TRANSCRIBE, TRANSLATE = "transcribe", "translate"
TEXT_FORMATS = {"text": "txt", "srt": "srt", "vtt": "vtt"}
"""``response_format`` values answered as plain text, and the whispercli.formats writer of each."""
FORMATS = ("json", "verbose_json", *TEXT_FORMATS)
STREAM_FORMATS = ("json", "text")
"""With ``stream=true`` the events carry text: a timed format cannot be streamed."""
OWNER = "whispercli"

_OPENAI_FIELDS = frozenset(
    {"model", "language", "prompt", "response_format", "temperature", "stream"}
)
_GRANULARITIES = "timestamp_granularities[]"
_KEYWORDS = "keywords[]"
_CHUNKING = "chunking_strategy"
NOT_HONOURED = {
    "include[]": "token log probabilities (logprobs) are not kept by this server",
    "known_speaker_names[]": "this server does not tell speakers apart (no diarization)",
    "known_speaker_references[]": "this server does not tell speakers apart (no diarization)",
    "languages[]": "give one language in 'language' (or none: it is detected)",
}
"""Fields of the SDK this server refuses (400 naming them) rather than ignoring silently."""
EXTRA_FIELDS = frozenset(
    name for name in WHISPER_PARAMS if name not in ("task", "word_timestamps", "initial_prompt")
)
"""What ``extra_body`` may add: the Whisper parameters faster-whisper has (``beam_size``,
``vad_filter``, ``hotwords``, ``speed``...). ``task`` is the endpoint; ``initial_prompt`` is
``prompt``; ``word_timestamps`` is ``timestamp_granularities[]=word``."""
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
INPUT_FAILURES = (
    "could not decode",
    "the uploaded file is empty",
    "the upload contains no audio",
    "the upload has no audio track",
    "the upload looks truncated",
    "the audio is",  # longer than --max-audio-hours
    "input parameter",  # a param the engine refused (token ids beyond the model's vocabulary)
)
"""How the engine's refusals of a job's input start (engine/outcome.py ``JobInputError``,
engine/audio.py's messages): a job that failed so is the caller's request (400), any other
failure is the server's (500)."""

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error"}
_TYPES |= {403: "invalid_request_error", 409: "invalid_request_error", 410: "invalid_request_error"}
_TYPES |= {413: "invalid_request_error", 422: "invalid_request_error", 429: "requests"}
_CODES = {
    "unauthorized": "invalid_api_key",
    "queue_full": "rate_limit_exceeded",
    "too_large": "file_too_large",
    "invalid_input": "invalid_value",
}
_PARAM = re.compile(r"input parameter '([a-z_]+)'")


class OpenAIError(Exception):
    """An error answered in OpenAI's shape, with its HTTP status (and headers)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = dict(headers or {})

    @property
    def detail(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, "server_error")
        return {"message": self.message, "type": kind, "param": self.param, "code": self.code}

    def body(self) -> dict[str, Any]:
        return {"error": self.detail}


def from_service(
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    param: str | None = None,
) -> OpenAIError:
    """A job-service error (code and status of ``jobs.errors.ERRORS``) in OpenAI's shape; an
    invalid Whisper parameter is named in ``param`` (as the form calls it)."""
    if code == "invalid_input" and param is None:
        found = _PARAM.search(message)
        param = found.group(1) if found else ("language" if "language" in message else None)
        param = "prompt" if param == "initial_prompt" else param
    return OpenAIError(status, message, param=param, code=_CODES.get(code, code), headers=headers)


@dataclass(frozen=True)
class AudioRequest:
    """One transcription or translation request, read from its form."""

    model: str
    task: str
    response_format: str = "json"
    stream: bool = False
    words: bool = False
    """``timestamp_granularities[]`` has ``word``: verbose_json gets top-level ``words``."""
    params: dict[str, Any] = field(default_factory=dict)
    """The job's Whisper input parameters (validated again by the job service)."""


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise OpenAIError(400, f"'{name}' must be true or false, not {value!r}", param=name)


def _number(name: str, value: str, types: tuple[type, ...]) -> Any:
    try:
        if types == (int,):
            return int(value)
        if list in types and "," in value:
            return [float(part) for part in value.split(",")]
        number = float(value)
    except ValueError:
        kind = "an integer" if types == (int,) else "a number"
        raise OpenAIError(400, f"'{name}' must be {kind}, not {value!r}", param=name) from None
    return number


def _extra(name: str, value: str) -> Any:
    """An ``extra_body`` field as the Whisper parameter's JSON type (forms send strings)."""
    types = WHISPER_PARAMS[name]
    if types == (bool,):
        return _flag(name, value)
    if str in types:
        return value
    return _number(name, value, types)


def _granularities(values: Sequence[str], response_format: str) -> bool:
    """Whether words were asked for; only verbose_json has timestamps to give."""
    for value in values:
        if value not in ("word", "segment"):
            raise OpenAIError(
                400,
                f"timestamp granularity must be word or segment, not {value!r}",
                param=_GRANULARITIES,
            )
    if values and response_format != "verbose_json":
        raise OpenAIError(
            400,
            "timestamp_granularities[] needs response_format=verbose_json",
            param=_GRANULARITIES,
        )
    return "word" in values


def _chunking(value: str) -> None:
    if value != "auto":
        raise OpenAIError(
            400,
            "chunking_strategy: only 'auto' (this server always cuts the audio at pauses, "
            "with voice activity detection)",
            param=_CHUNKING,
        )


def _format(fields: Mapping[str, str], stream: bool) -> str:
    fmt = fields.get("response_format", "json")
    if fmt not in FORMATS:
        hint = " (no diarization here)" if fmt == "diarized_json" else ""
        raise OpenAIError(
            400,
            f"response_format must be one of {', '.join(FORMATS)}, not {fmt!r}{hint}",
            param="response_format",
        )
    if stream and fmt not in STREAM_FORMATS:
        raise OpenAIError(
            400,
            f"stream=true sends text events: response_format must be json or text, not {fmt!r}",
            param="response_format",
        )
    return fmt


def parse_form(pairs: Iterable[tuple[str, str]], task: str, *, has_file: bool) -> AudioRequest:
    """The request in a form's fields (in order; list fields repeat their ``name[]``)."""
    if not has_file:
        raise OpenAIError(400, "the form has no 'file' part (the audio file)", param="file")
    fields: dict[str, str] = {}
    lists: dict[str, list[str]] = {_GRANULARITIES: [], _KEYWORDS: []}
    for name, value in pairs:
        if name in lists:
            lists[name].append(value)
        elif name in NOT_HONOURED:
            raise OpenAIError(400, f"'{name}' is not supported: {NOT_HONOURED[name]}", param=name)
        elif name == _CHUNKING:
            _chunking(value)
        elif name in _OPENAI_FIELDS or name in EXTRA_FIELDS:
            if name in fields:
                raise OpenAIError(400, f"'{name}' is given twice", param=name)
            fields[name] = value
        else:
            accepted = sorted(_OPENAI_FIELDS | EXTRA_FIELDS | {_GRANULARITIES, _KEYWORDS})
            raise OpenAIError(
                400,
                f"unknown field '{name}'; accepted: file, {', '.join(accepted)}",
                param=name,
            )
    model = fields.pop("model", "").strip()
    if not model:
        raise OpenAIError(400, "'model' is required (e.g. whisper-1)", param="model")
    stream = _flag("stream", fields.pop("stream", "false"))
    response_format = _format(fields, stream)
    fields.pop("response_format", None)
    words = _granularities(lists[_GRANULARITIES], response_format)
    params = _params(fields, lists[_KEYWORDS])
    params["task"] = task
    if words:
        params["word_timestamps"] = True
    return AudioRequest(model, task, response_format, stream, words, params)


def _params(fields: Mapping[str, str], keywords: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "prompt":
            if value:
                params["initial_prompt"] = value
        elif name == "language":
            if value.strip():
                params["language"] = value
        else:
            params[name] = _extra(name, value)
    if keywords:
        if "hotwords" in params:
            raise OpenAIError(400, "give keywords[] or hotwords, not both", param=_KEYWORDS)
        params["hotwords"] = ", ".join(keywords)
    if params.get("temperature") == 0.0:
        # OpenAI: "if set to 0, the model will ... automatically increase the temperature"
        # -- Whisper's fallback schedule, which is this server's default.
        del params["temperature"]
    return params


# -- answers -------------------------------------------------------------------------------------
def ended_badly(status: str, error: str | None) -> OpenAIError | None:
    """The error a failed or cancelled job answers (None for a success).

    The job already had its attempts on the server, so a failure says ``x-should-retry:
    false``: the SDK would otherwise send the same file twice more."""
    no_retry = {"x-should-retry": "false"}
    if status == "cancelled":
        return OpenAIError(410, "the job was cancelled", code=JOB_CANCELLED_CODE, headers=no_retry)
    if status != "failed":
        return None
    why = error or "no reason given"
    if why.startswith(INPUT_FAILURES):
        return OpenAIError(400, why, param="file", code=INVALID_FILE_CODE, headers=no_retry)
    failed = f"the transcription failed: {why}"
    return OpenAIError(500, failed, code=JOB_FAILED_CODE, headers=no_retry)


def usage(result: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI bills whole seconds of audio: ``{"type": "duration", "seconds"}``."""
    duration = result.get("duration")
    seconds = math.ceil(duration) if isinstance(duration, int | float) else 0
    return {"type": "duration", "seconds": seconds}


def json_body(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": str(result.get("text", "")).strip(), "usage": usage(result)}


def _segment(segment: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A verbose_json segment: every field OpenAI documents, defaults where ours has none."""
    return {
        "id": segment.get("id", index),
        "seek": segment.get("seek", 0),
        "start": segment.get("start", 0.0),
        "end": segment.get("end", 0.0),
        "text": segment.get("text", ""),
        "tokens": segment.get("tokens", []),
        "temperature": segment.get("temperature", 0.0),
        "avg_logprob": segment.get("avg_logprob", 0.0),
        "compression_ratio": segment.get("compression_ratio", 0.0),
        "no_speech_prob": segment.get("no_speech_prob", 0.0),
    }


def words_of(segments: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every segment's words as OpenAI's top-level ``words`` (no leading space)."""
    return [
        {"word": str(word.get("word", "")).strip(), "start": word["start"], "end": word["end"]}
        for segment in segments
        for word in segment.get("words") or []
    ]


def verbose_body(result: Mapping[str, Any], task: str, words: bool) -> dict[str, Any]:
    segments = result.get("segments") or []
    language = str(result.get("language") or "")
    body: dict[str, Any] = {
        "task": task,
        "language": "english" if task == TRANSLATE else LANGUAGE_NAMES.get(language, language),
        "duration": result.get("duration"),
        "text": result.get("text", ""),
        "segments": [_segment(s, i) for i, s in enumerate(segments)],
    }
    if words:
        body["words"] = words_of(segments)
    body["usage"] = usage(result)
    return body


def text_body(result: Mapping[str, Any], response_format: str) -> str:
    """``text``, ``srt`` or ``vtt``: whispercli.formats' writers, byte for byte."""
    return formats.render(Result.from_dict(dict(result)), TEXT_FORMATS[response_format])


# -- streaming -----------------------------------------------------------------------------------
KEEPALIVE = ": keep-alive\n\n"
"""An SSE comment (clients skip it): sent while a job waits, so no idle timeout cuts the stream."""


def sse(data: Mapping[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def delta_event(segment: Mapping[str, Any], segment_id: int) -> dict[str, Any]:
    """One decoded segment; ``segment_id`` lets a client keep segments apart."""
    return {
        "type": "transcript.text.delta",
        "delta": str(segment.get("text", "")),
        "segment_id": f"seg_{segment_id}",
    }


def done_event(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "transcript.text.done", "text": str(result.get("text", "")).strip()}


def ready_segments(segments: Sequence[Mapping[str, Any]], next_id: int) -> list[dict[str, Any]]:
    """The segments from id ``next_id`` on that have every segment before them: a stream never
    sends one before those it follows. A segment without an integer id counts by position."""
    by_id: dict[int, Mapping[str, Any]] = {}
    for index, segment in enumerate(segments):
        key = segment.get("id")
        by_id[key if isinstance(key, int) and not isinstance(key, bool) else index] = segment
    ready = []
    while next_id in by_id:
        ready.append(dict(by_id[next_id]))
        next_id += 1
    return ready


# -- models --------------------------------------------------------------------------------------
def model_entry(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": OWNER}


def models_body(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": entries}


def translate_refusal(asked: str, model: str, multilingual: Sequence[str]) -> str:
    """Why an English-only ``model`` (named ``asked``: whisper-1 is an alias) cannot translate,
    and which model would."""
    if multilingual:
        which = f"use model '{multilingual[0]}' (installed here and multilingual)"
    else:
        which = (
            "no multilingual model is installed here: `whispercli models pull small` on the "
            "server installs one, then use model 'small'"
        )
    named = f"'{asked}' (model '{model}' on this server)" if asked != model else f"'{model}'"
    return f"model {named} is English-only and cannot translate; {which}"
