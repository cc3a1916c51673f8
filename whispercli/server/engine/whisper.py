"""The transcription engine: faster-whisper behind one method (CPU int8 or CUDA: see device).

Only the engine process imports this module (the server keeps the Hugging Face hub offline
for it: ``jobs.models.keep_hub_offline``). :meth:`Engine.transcribe` hands each job's Whisper
parameters to :func:`whispercli.server.engine.plans.plan`, which maps them onto faster-whisper
and picks the path (Whisper's sequential algorithm, or VAD chunks decoded in parallel by
:mod:`.chunked`) from the decoding speed; bench/engine.py measures them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import av
import numpy as np
from faster_whisper import WhisperModel, decode_audio

from whispercli.modelhub import vocabulary_size
from whispercli.segments import split_segment
from whispercli.server.engine import plans, quality
from whispercli.server.engine.chunked import SAMPLE_RATE, ChunkedDecoder
from whispercli.server.engine.device import DevicePlan, cpu_plan
from whispercli.server.jobs.params import ParamError, check_token_ids

MAX_REPLICAS = 4
CPU_PLAN = cpu_plan("int8", "default")
SegmentCallback = Callable[[dict[str, Any] | None, float], None]
"""Called with each finished segment and the progress (0..1), or with None and the progress
alone while a long batch decodes (about every second); may raise to stop early."""


class JobInputError(ValueError):
    """The job cannot be run as asked (its upload or its params); the message says why."""


class AudioError(JobInputError):
    """The upload cannot be transcribed (empty, not audio, no samples)."""


def _mp3_has_length_header(path: str) -> bool:
    """True when an MP3's first frame carries a Xing/Info/VBRI header (an exact length)."""
    with open(path, "rb") as fh:
        head = fh.read(10)
        offset = 0
        if head[:3] == b"ID3" and len(head) == 10:  # skip the ID3v2 tag (syncsafe size)
            offset = 10 + sum((b & 0x7F) << (7 * (3 - i)) for i, b in enumerate(head[6:10]))
        fh.seek(offset)
        frame = fh.read(256)
    return any(tag in frame for tag in (b"Xing", b"Info", b"VBRI"))


def declared_duration(path: str) -> float | None:
    """The length the file's header promises, when the format states it exactly.

    Only headers that record the length (FLAC's sample count, an MP3 Xing/Info/VBRI header)
    count: ffmpeg's estimate from a bitrate is too rough to call a file truncated.
    """
    try:
        with av.open(path) as container:
            fmt, duration = container.format.name, container.duration
    except Exception:
        return None
    if duration is None or fmt not in ("mp3", "flac"):
        return None
    if fmt == "mp3" and not _mp3_has_length_header(path):
        return None
    return float(duration / av.time_base)


def has_audio_track(path: str) -> bool | None:
    """Whether the container has an audio stream; None when it cannot be opened at all."""
    try:
        with av.open(path) as container:
            return bool(container.streams.audio)
    except Exception:
        return None


def load_audio(path: str) -> np.ndarray:
    """Decode ``path`` by its content (the upload's extension is only a hint)."""
    if os.path.getsize(path) == 0:
        raise AudioError("the uploaded file is empty")
    try:
        audio = decode_audio(path, sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many types; all mean "not decodable"
        if has_audio_track(path) is False:
            raise AudioError(
                "the upload has no audio track (a video without sound?): nothing to transcribe"
            ) from None
        reason = getattr(exc, "strerror", None) or str(exc)  # strerror omits the server's path
        raise AudioError(f"could not decode the upload as audio: {reason}") from None
    if audio.size == 0:
        raise AudioError("the upload contains no audio (0 seconds decoded)")
    decoded = audio.size / SAMPLE_RATE
    declared = declared_duration(path)
    if declared is not None and decoded < 0.9 * declared and declared - decoded > 0.5:
        raise AudioError(
            f"the upload looks truncated: its header promises {declared:.1f} s of audio "
            f"but only {decoded:.1f} s could be decoded; upload the complete file"
        )
    return audio


def _segment_dict(seg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": seg.id,
        "seek": seg.seek,
        "start": round(float(seg.start), 3),
        "end": round(float(seg.end), 3),
        "text": seg.text,
        "tokens": list(seg.tokens),
        "temperature": seg.temperature,
        "avg_logprob": seg.avg_logprob,
        "compression_ratio": seg.compression_ratio,
        "no_speech_prob": seg.no_speech_prob,
    }
    if seg.words:
        out["words"] = [
            {"start": w.start, "end": w.end, "word": w.word, "probability": w.probability}
            for w in seg.words
        ]
    return out


class _Progress:
    """A job's progress: it never goes back, whichever estimate moved it last."""

    def __init__(self) -> None:
        self.value = 0.0

    def advance(self, value: float) -> bool:
        """Move to ``value`` (capped at 1) if it is further; True if it moved by 0.5 % or more."""
        value = min(1.0, value)
        if value < self.value + 0.005:
            return False
        self.value = value
        return True


def gate_on(params: dict[str, Any]) -> bool:
    """The no-speech gate (quality.gate): on unless turned off, by itself or with the VAD."""
    explicit = params.get("no_speech_gate")
    return bool(explicit) if explicit is not None else params.get("vad_filter") is not False


def replica_layout(cpu_threads: int) -> tuple[int, int]:
    """(replicas, threads per replica) for ``cpu_threads`` engine threads (0: one per CPU).

    Single-thread replicas decode faster per core than one replica sharing threads (see
    whispercli.server.engine.chunked); past a few replicas, threads go into each replica instead.
    """
    total = cpu_threads or len(os.sched_getaffinity(0)) or 1
    replicas = min(total, MAX_REPLICAS)
    return replicas, max(1, total // replicas)


class Engine:
    """One loaded model; kept loaded across jobs by the engine process."""

    def __init__(
        self,
        model_path: str,
        *,
        cpu_threads: int = 0,
        speed: str = plans.DEFAULT_SPEED,
        plan: DevicePlan = CPU_PLAN,
    ) -> None:
        """``speed`` is the server's decoding speed; a job's ``speed`` param overrides it.
        ``plan`` is the device's (whispercli.server.engine.device)."""
        self.model_path = model_path
        self.speed = speed
        self.plan = plan
        if plan.replicas is None:
            replicas, threads = replica_layout(cpu_threads)
        else:
            replicas, threads = plan.replicas, cpu_threads
        self.model = WhisperModel(
            model_path,
            device=plan.device,
            compute_type=plan.compute_type,
            cpu_threads=threads,
            num_workers=replicas,
        )
        self.chunked = ChunkedDecoder(self.model, replicas)
        size = vocabulary_size(Path(model_path))
        self.vocabulary = size or self.model.hf_tokenizer.get_vocab_size(with_added_tokens=True)
        """Tokens of the model: a token id at or past this would index past native tables."""

    def transcribe(
        self, path: str, params: dict[str, Any], on_segment: SegmentCallback
    ) -> dict[str, Any]:
        """Transcribe ``path``; return the protocol's ``result`` object."""
        try:  # the server checks at submit too; a job queued by another server may not be
            check_token_ids(params, self.vocabulary)
        except ParamError as exc:
            raise JobInputError(str(exc)) from None
        audio = load_audio(path)
        duration = audio.size / SAMPLE_RATE
        plan = plans.plan(self.speed, params, duration)
        segments: Generator[Any, None, None]
        progress = _Progress()
        probability = speech = None
        if plan.chunked:
            if self.plan.batch_size is not None:
                plan.kwargs["batch_size"] = self.plan.batch_size

            def tick(share: float) -> None:
                if progress.advance(share):
                    on_segment(None, progress.value)

            segments, language = self.chunked.transcribe(
                audio,
                balanced=plan.balanced,
                encoder_padding=plan.encoder_padding,
                on_progress=tick,
                **plan.kwargs,
            )
        else:
            segments, info = self.model.transcribe(audio, **plan.kwargs)
            language, probability = info.language, round(info.language_probability, 4)
            speech = info.duration_after_vad if plan.kwargs.get("vad_filter") else None
        # The chunked path decodes whole VAD chunks with word timings (see plans.plan):
        # cut them into sentence-sized segments, keeping word timings only if asked for.
        keep_words = bool(params.get("word_timestamps"))

        def pieces() -> Iterator[dict[str, Any]]:
            for seg in segments:
                progress.advance(float(seg.end) / duration if duration else 1.0)
                yield from (
                    split_segment(_segment_dict(seg)) if plan.chunked else [_segment_dict(seg)]
                )

        collected: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []  # by the gate: still evidence for the warnings
        with closing(segments):  # on cancel (on_segment raises), stop decoding at once
            for item in quality.gate(pieces(), dropped) if gate_on(params) else pieces():
                item["id"] = len(collected)
                if plan.chunked and not keep_words:
                    item.pop("words", None)
                collected.append(item)
                on_segment(item, progress.value)
        multilingual = bool(self.model.model.is_multilingual)
        schedule = plans.temperatures(params)
        first = schedule[0] if isinstance(schedule, tuple) else schedule or 0.0
        notes = quality.warnings(
            collected,
            duration,
            multilingual=multilingual,
            first_temperature=first,
            dropped=dropped,
            speech=speech,
        )
        return {
            "text": "".join(s["text"] for s in collected),
            "segments": collected,
            "language": language,
            "language_probability": probability,
            "duration": round(duration, 3),
            "warnings": notes,
            "device": self.plan.device,
        }
