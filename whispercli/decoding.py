"""Decoding profiles: how the engine calls faster-whisper for a speed/accuracy trade-off.

Pure Python (no faster-whisper or numpy import) so the server, the CLI and the tests can use it.
The measurements behind the choices are in bench/RESULTS.md (bench/engine.py makes them).

The engine calls :func:`plan` once per job and hands the kwargs to one of two pipelines::

    use_batched, kwargs = decoding.plan(server_profile, params, duration_seconds)
    if use_batched:
        segments, info = BatchedInferencePipeline(model).transcribe(audio, **kwargs)
    else:
        segments, info = model.transcribe(audio, **kwargs)

``params`` are the job's validated protocol params (whispercli.server.params); the job's own
``speed`` param, when given, picks the profile over the server's setting. Explicit params win
over the profile (a job that asks for ``beam_size=5`` gets beam 5). A job that sets a param
only the sequential path honours (temperature fallback, thresholds, ``condition_on_previous_text``)
to something other than Whisper's default, or turns ``vad_filter`` off, is decoded sequentially,
so that the request is honoured rather than silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_PROFILE = "default"

# Whisper's default temperature schedule: 0.0, then fallback steps of 0.2 up to 1.0.
_DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

# Params that only WhisperModel.transcribe (sequential) honours, with Whisper's defaults:
# faster-whisper's batched pipeline documents them as unused (it decodes every chunk once, at
# the first temperature, without the previous chunk's text as a prompt).
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
    "word_timestamps", "vad_filter",
)  # fmt: skip
_RENAMED = {"logprob_threshold": "log_prob_threshold"}


@dataclass(frozen=True)
class Profile:
    """One decoding strategy.

    Audio at least ``batched_min_seconds`` long goes through the batched pipeline (Silero VAD
    cuts it at pauses into chunks of at most ``chunk_length`` seconds, decoded ``batch_size`` at
    a time); shorter audio, or every file when it is None, through the sequential one.
    """

    beam_size: int = 5
    batched_min_seconds: float | None = None
    batch_size: int = 8
    chunk_length: int | None = None  # None = faster-whisper's 30 s
    # Sample timestamp tokens on the batched path: +5 to +7 WER points on the bench set. False
    # (the default) decodes each VAD chunk without them, at the sequential path's accuracy, and
    # asks for word timings instead, which the engine uses to cut sentence-sized segments.
    # See bench/RESULTS.md.
    batched_timestamps: bool = False
    sequential: tuple[tuple[str, Any], ...] = ()  # kwargs overriding the above when sequential


PROFILES: dict[str, Profile] = {
    # The seed's behaviour, faster-whisper's and whisper-ctranslate2's default: sequential beam
    # search of 5 with temperature fallback. Timestamped segments of a few seconds.
    "accurate": Profile(beam_size=5),
    # Batched beam search once there is more than one 30 s window; below 30 s batching cannot
    # help, so short files take the "accurate" path (never slower). Measured on the bench set
    # (bench/RESULTS.md): 1.4-1.5x the speed of "accurate" (1.7-1.8x on a 157 s file), WER
    # within 0.2 points; word timings for the sentence cuts cost about 8 %.
    "default": Profile(
        beam_size=4, batched_min_seconds=30.0, batch_size=8, sequential=(("beam_size", 5),)
    ),
    # Beam 2 on both paths: about 1.5-1.7x (2.2x on the long file), WER +1.5 points (batched
    # greedy was +3.2).
    "fast": Profile(beam_size=2, batched_min_seconds=30.0, batch_size=8),
}


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
        return True  # the batched pipeline needs VAD to cut audio longer than 30 s
    for name, default in SEQUENTIAL_ONLY_DEFAULTS.items():
        value = params.get(name)
        if value is not None and value != default:
            return True
    schedule = temperatures(params)
    return isinstance(schedule, tuple) and len(schedule) > 1 and schedule != _DEFAULT_TEMPERATURES


def plan(
    profile_name: str | None, params: Mapping[str, Any], duration_seconds: float | None
) -> tuple[bool, dict[str, Any]]:
    """Choose the pipeline and build the transcribe kwargs for one job.

    ``profile_name`` is the server's setting (None = "default"); ``params["speed"]`` overrides
    it. Returns (use_batched, kwargs): when use_batched, kwargs include ``batch_size`` and go to
    ``BatchedInferencePipeline(model).transcribe``, otherwise to ``WhisperModel.transcribe``.
    An unknown duration (None) plans like short audio. Raises ValueError for an unknown profile.
    """
    name = params.get("speed") or profile_name or DEFAULT_PROFILE
    if name not in PROFILES:
        raise ValueError(f"unknown decoding profile {name!r} (known: {', '.join(PROFILES)})")
    profile = PROFILES[name]
    use_batched = (
        profile.batched_min_seconds is not None
        and duration_seconds is not None
        and duration_seconds >= profile.batched_min_seconds
        and not needs_sequential(params)
    )
    kwargs: dict[str, Any] = {"beam_size": profile.beam_size}
    if use_batched:
        kwargs["batch_size"] = profile.batch_size
        kwargs["without_timestamps"] = not profile.batched_timestamps
        if not profile.batched_timestamps:
            # Word timings let the engine cut each chunk into sentences (server/resegment.py).
            kwargs["word_timestamps"] = True
        if profile.chunk_length is not None:
            kwargs["chunk_length"] = profile.chunk_length
    else:
        kwargs.update(profile.sequential)
    kwargs.update(whisper_kwargs(params))
    return use_batched, kwargs
