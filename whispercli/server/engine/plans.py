"""Decoding speeds: how the engine calls faster-whisper for a speed/accuracy trade-off.

Pure Python (no faster-whisper or numpy import) so the server, the CLI and the tests can use it.
The measurements behind the choices are in bench/RESULTS.md (bench/engine.py makes them).

The engine calls :func:`plan` once per job and follows it::

    plan = plans.plan(server_speed, params, duration_seconds)
    if plan.chunked:   # VAD chunks, batched with other jobs' (engine.speech, engine.batcher)
        options = batch_options(plan.kwargs); window = plan.encoder_padding
    else:              # Whisper's own sequential algorithm
        segments, info = model.transcribe(audio, **plan.kwargs)

``params`` are the job's validated protocol params (whispercli.server.jobs.params); the job's own
``speed`` param, when given, wins over the server's setting. Explicit params win
over the speed's choices (a job that asks for ``beam_size=5`` gets beam 5). A job that sets a param
only the sequential path honours (temperature fallback, thresholds, ``condition_on_previous_text``)
to something other than Whisper's default, or turns ``vad_filter`` off, is decoded sequentially,
so that the request is honoured rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_SPEED = "default"
WINDOW_SECONDS = 30.0

# Whisper's default temperature schedule: 0.0, then fallback steps of 0.2 up to 1.0.
_DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

# Params that only WhisperModel.transcribe (sequential) honours, with Whisper's defaults:
# faster-whisper's batched pipeline, which the chunked path runs, documents them as unused (it
# decodes every chunk once, at the first temperature, without the previous chunk's text).
SEQUENTIAL_ONLY_DEFAULTS: dict[str, Any] = {
    "temperature_increment_on_fallback": 0.2,
    "compression_ratio_threshold": 2.4,
    "logprob_threshold": -1.0,
    "no_speech_threshold": 0.6,
    "condition_on_previous_text": True,
}

# Protocol params passed to faster-whisper under the same name (or the renamed one).
_PASSTHROUGH = (
    "language", "task", "beam_size", "best_of", "patience", "length_penalty",
    "no_speech_threshold", "compression_ratio_threshold", "logprob_threshold",
    "condition_on_previous_text", "initial_prompt", "suppress_tokens",
    "word_timestamps", "vad_filter", "hotwords",
)  # fmt: skip
# ``hotwords`` needs no sequential path: faster-whisper 1.2.1 puts them in the prompt of every
# window on both paths (WhisperModel.generate_segments and BatchedInferencePipeline's
# generate_segment_batched both call get_prompt(..., hotwords=...)).
_RENAMED = {"logprob_threshold": "log_prob_threshold"}


@dataclass(frozen=True)
class Speed:
    """One decoding strategy (a ``--speed``; "speed", not "profile", which names a config).

    The chunked path (engine.speech + engine.batcher) cuts the audio at pauses into chunks of
    at most one Whisper window, as faster-whisper's batched pipeline does, and decodes them
    without timestamp tokens (they cost 5-7 WER points there) but with word timings, which cut
    the sentence-sized segments; every job's chunks share the engine's decoding threads. With
    ``chunked`` False, Whisper's sequential algorithm (timestamp tokens, temperature fallback).
    """

    beam_size: int = 5
    chunked: bool = False
    encoder_padding: float | None = None
    """Encode a chunk plus this many seconds (at least ``MIN_WINDOW_SECONDS``) instead of a
    full 30 s window (None); the encoder's cost grows faster than its input (attention)."""
    short_padding: float | None = None
    """The same for audio shorter than one window (one chunk): a 3 s clip needs no 30 s
    window's work."""
    sequential_vad: bool = True
    """The sequential path skips what Silero VAD calls silence (no "Thank you." on it); off
    for ``accurate``, which is Whisper's own algorithm (VAD cost it 5.8 WER points on the
    real recordings of bench/real: it cut words at the joins)."""


MIN_WINDOW_SECONDS = 10.0
"""The shortest encoder input: 1-3 s clips encoded with 3 s of padding looped on their words
("10 of clubs 10 of clubs ..."); from 10 s, real clips kept the full window's WER."""
SHORT_PADDING = 5.0
"""Seconds of padding after a short chunk (3 or 4 s cost accuracy on real clips)."""

SPEEDS: dict[str, Speed] = {
    # The seed's behaviour, faster-whisper's and whisper-ctranslate2's default: sequential beam
    # search of 5 with temperature fallback. Timestamped segments of a few seconds.
    "accurate": Speed(beam_size=5, sequential_vad=False),
    # faster-whisper's batched pipeline's chunks and beam 5 (its WER on the bench), full
    # windows for long audio, a window sized to the clip for short audio.
    "default": Speed(beam_size=5, chunked=True, short_padding=SHORT_PADDING),
    # Windows sized to every chunk, beam 2.
    "fast": Speed(beam_size=2, chunked=True, encoder_padding=SHORT_PADDING,
                  short_padding=SHORT_PADDING),
}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """How to decode one job: which path, and the faster-whisper kwargs for it."""

    kwargs: dict[str, Any]
    chunked: bool = False
    encoder_padding: float | None = None
    """Seconds of encoder input after a chunk's speech (None: a full 30 s window)."""


def temperatures(params: Mapping[str, Any]) -> float | tuple[float, ...] | None:
    """The temperature schedule, built like openai-whisper's ``transcribe`` (None = default)."""
    temperature = params.get("temperature")
    increment = params.get("temperature_increment_on_fallback")
    if isinstance(temperature, list | tuple):
        return tuple(float(t) for t in temperature)
    if increment is None:
        return None if temperature is None else float(temperature)
    start = 0.0 if temperature is None else float(temperature)
    steps = int((1.0 - start) / float(increment) + 1e-6)
    return tuple(round(start + i * float(increment), 6) for i in range(steps + 1))


def whisper_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validated protocol params -> faster-whisper transcribe kwargs (absent/None = default)."""
    kwargs = {
        _RENAMED.get(name, name): params[name]
        for name in _PASSTHROUGH
        if params.get(name) is not None
    }
    schedule = temperatures(params)
    if schedule is not None:
        kwargs["temperature"] = schedule
    return kwargs


def needs_sequential(params: Mapping[str, Any]) -> bool:
    """True when the job asks for something only the sequential path does."""
    if params.get("vad_filter") is False:
        return True  # the chunked path drops what VAD calls silence
    for name, default in SEQUENTIAL_ONLY_DEFAULTS.items():
        value = params.get(name)
        if value is not None and value != default:
            return True
    schedule = temperatures(params)
    return isinstance(schedule, tuple) and len(schedule) > 1 and schedule != _DEFAULT_TEMPERATURES


def plan(speed_name: str | None, params: Mapping[str, Any], duration_seconds: float | None) -> Plan:
    """Choose the path and build the transcribe kwargs for one job.

    ``speed_name`` is the server's setting (None = "default"); ``params["speed"]`` overrides
    it. A chunked plan's kwargs become the batcher's decoding options; a sequential one's go to
    ``WhisperModel.transcribe``. An unknown duration (None) plans like long audio (full
    windows). Raises ValueError for an unknown speed.
    """
    name = params.get("speed") or speed_name or DEFAULT_SPEED
    if name not in SPEEDS:
        raise ValueError(f"unknown decoding speed {name!r} (known: {', '.join(SPEEDS)})")
    speed = SPEEDS[name]
    chunked = speed.chunked and not needs_sequential(params)
    kwargs: dict[str, Any] = {"beam_size": speed.beam_size}
    if not chunked:
        kwargs.update(whisper_kwargs(params))
        kwargs.setdefault("vad_filter", speed.sequential_vad)
        return Plan(kwargs)
    kwargs.update(without_timestamps=True)
    kwargs.update(whisper_kwargs(params))
    # Word timings let the engine cut each chunk into sentences (whispercli/segments.py); it
    # drops them from the result unless the job asked for them.
    kwargs["word_timestamps"] = True
    kwargs.pop("vad_filter", None)
    short = duration_seconds is not None and duration_seconds < WINDOW_SECONDS
    padding = speed.short_padding if short else speed.encoder_padding
    return Plan(kwargs, True, padding)
