"""The transcription engine: faster-whisper (CTranslate2, CPU, int8) behind one method.

Only the worker process imports this module. :meth:`Engine.transcribe` is the single place
that maps the protocol's Whisper parameters onto faster-whisper and decides the decoding
strategy, so changing how audio is decoded means changing this file only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av
import numpy as np
from faster_whisper import WhisperModel, decode_audio

SAMPLE_RATE = 16000
SegmentCallback = Callable[[dict[str, Any], float], None]
"""Called with each finished segment and the progress (0..1); may raise to stop early."""


class AudioError(ValueError):
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


def load_audio(path: str) -> np.ndarray:
    """Decode ``path`` by its content (the upload's extension is only a hint)."""
    if os.path.getsize(path) == 0:
        raise AudioError("the uploaded file is empty")
    try:
        audio = decode_audio(path, sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV raises many types; all mean "not decodable"
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


def temperatures(params: dict[str, Any]) -> float | tuple[float, ...] | None:
    """The temperature schedule, built like openai-whisper's ``transcribe``."""
    temperature = params.get("temperature")
    increment = params.get("temperature_increment_on_fallback")
    if isinstance(temperature, list):
        return tuple(temperature)
    if temperature is None:
        return None if increment is None else tuple(np.arange(0.0, 1.0 + 1e-6, increment))
    if increment is None:
        return float(temperature)
    return tuple(float(t) for t in np.arange(temperature, 1.0 + 1e-6, increment))


def transcribe_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """Map validated protocol params onto ``WhisperModel.transcribe`` keyword arguments.

    ``None`` (or an absent param) keeps faster-whisper's default. ``speed`` is accepted by the
    protocol but does not change decoding yet.
    """
    renames = {"logprob_threshold": "log_prob_threshold"}
    passthrough = (
        "language", "task", "beam_size", "best_of", "patience", "length_penalty",
        "no_speech_threshold", "compression_ratio_threshold", "logprob_threshold",
        "condition_on_previous_text", "initial_prompt", "suppress_tokens",
        "word_timestamps", "vad_filter",
    )  # fmt: skip
    kwargs = {
        renames.get(name, name): params[name]
        for name in passthrough
        if params.get(name) is not None
    }
    schedule = temperatures(params)
    if schedule is not None:
        kwargs["temperature"] = schedule
    return kwargs


def _segment_dict(seg: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": seg.id,
        "seek": seg.seek,
        "start": round(seg.start, 3),
        "end": round(seg.end, 3),
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


class Engine:
    """One loaded model; kept loaded across jobs by the worker."""

    def __init__(self, model_path: str, *, cpu_threads: int = 0) -> None:
        self.model_path = model_path
        self.model = WhisperModel(
            model_path, device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )

    def transcribe(
        self, path: str, params: dict[str, Any], on_segment: SegmentCallback
    ) -> dict[str, Any]:
        """Transcribe ``path``; return the protocol's ``result`` object."""
        audio = load_audio(path)
        duration = audio.size / SAMPLE_RATE
        segments, info = self.model.transcribe(audio, **transcribe_kwargs(params))
        collected = []
        for seg in segments:
            item = _segment_dict(seg)
            collected.append(item)
            on_segment(item, min(1.0, seg.end / duration) if duration else 1.0)
        return {
            "text": "".join(s["text"] for s in collected),
            "segments": collected,
            "language": info.language,
            "duration": round(duration, 3),
        }
