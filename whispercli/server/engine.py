"""The transcription engine: faster-whisper (CTranslate2, CPU, int8) behind one method.

Only the worker process imports this module. :meth:`Engine.transcribe` hands each job's
Whisper parameters to :func:`whispercli.decoding.plan`, which maps them onto faster-whisper and
picks the pipeline (sequential, or batched with VAD chunking for long audio) from the decoding
profile; bench/engine.py measures the profiles.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av
import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

from whispercli import decoding
from whispercli.server.resegment import split_segment

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

    def __init__(
        self, model_path: str, *, cpu_threads: int = 0, profile: str = decoding.DEFAULT_PROFILE
    ) -> None:
        """``profile`` is the server's decoding profile; a job's ``speed`` param overrides it."""
        self.model_path = model_path
        self.profile = profile
        self.model = WhisperModel(
            model_path, device="cpu", compute_type="int8", cpu_threads=cpu_threads
        )
        self.batched = BatchedInferencePipeline(self.model)

    def transcribe(
        self, path: str, params: dict[str, Any], on_segment: SegmentCallback
    ) -> dict[str, Any]:
        """Transcribe ``path``; return the protocol's ``result`` object."""
        audio = load_audio(path)
        duration = audio.size / SAMPLE_RATE
        use_batched, kwargs = decoding.plan(self.profile, params, duration)
        pipeline = self.batched if use_batched else self.model
        segments, info = pipeline.transcribe(audio, **kwargs)
        # The batched path decodes whole VAD chunks with word timings (see decoding.plan):
        # cut them into sentence-sized segments, keeping word timings only if asked for.
        split = use_batched and bool(kwargs.get("without_timestamps"))
        keep_words = bool(params.get("word_timestamps"))
        collected: list[dict[str, Any]] = []
        for seg in segments:
            progress = min(1.0, seg.end / duration) if duration else 1.0
            for item in split_segment(_segment_dict(seg)) if split else [_segment_dict(seg)]:
                item["id"] = len(collected)
                if split and not keep_words:
                    item.pop("words", None)
                collected.append(item)
                on_segment(item, progress)
        return {
            "text": "".join(s["text"] for s in collected),
            "segments": collected,
            "language": info.language,
            "duration": round(duration, 3),
        }
