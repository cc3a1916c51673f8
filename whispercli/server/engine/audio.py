"""Audio in, in bounded pieces: decode an upload with PyAV a few seconds at a time.

The engine never holds a whole file's samples: :func:`open_audio` checks what the container's
header promises against the server's length limit (``--max-audio-hours``) before decoding
anything, and :meth:`AudioStream.pieces` yields 16 kHz mono float32 pieces of at most
``PIECE_SECONDS`` while counting what was decoded, so a file whose header lies (a tiny FLAC that
decodes to ten hours of silence) is stopped at the limit, not after it has filled the memory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from whispercli.server.defaults import Defaults
from whispercli.server.engine.outcome import AudioError

SAMPLE_RATE = 16000
PIECE_SECONDS = 30.0
"""Samples decoded at a time (one Whisper window: about 2 MB of float32)."""
DEFAULT_MAX_AUDIO_HOURS = Defaults.max_audio_hours


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


def _exact_length(path: str, fmt: str, seconds: float | None) -> float | None:
    """The header's length when the format records it exactly (FLAC's sample count, an MP3
    Xing/Info/VBRI header): ffmpeg's estimate from a bitrate is too rough to call a file
    truncated."""
    if seconds is None or fmt not in ("mp3", "flac"):
        return None
    if fmt == "mp3" and not _mp3_has_length_header(path):
        return None
    return seconds


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 360 else f"{seconds:.0f} s"


@dataclass
class AudioStream:
    """An opened upload: its header's length, then its samples piece by piece."""

    path: str
    container: Any
    max_seconds: float
    header_seconds: float | None
    """The length the header states (an estimate for some formats); None: unknown."""
    exact_seconds: float | None
    """The header's length when the format records it exactly (used to spot truncation)."""
    decoded_samples: int = 0

    def _limit_error(self) -> AudioError:
        return AudioError(
            f"the audio is longer than this server's limit of {_hours(self.max_seconds)} "
            "(--max-audio-hours); split the file, or ask the operator to raise the limit"
        )

    def _frames(self) -> Iterator[np.ndarray]:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        frames = self.container.decode(audio=0)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except av.error.InvalidDataError:
                continue  # a damaged packet: skip it, as faster-whisper's decoder does
            frame.pts = None
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1)
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1)

    def pieces(self, seconds: float = PIECE_SECONDS) -> Iterator[np.ndarray]:
        """The samples (float32, 16 kHz mono) in pieces of ``seconds`` (the last shorter).

        Raises :class:`AudioError` as soon as the decoded length passes the limit, and at the
        end if nothing was decoded or the file stops well short of what its header promises.
        """
        size = int(seconds * SAMPLE_RATE)
        limit = int(self.max_seconds * SAMPLE_RATE)
        held: list[np.ndarray] = []
        count = 0
        try:
            for samples in self._frames():
                self.decoded_samples += samples.size
                if self.decoded_samples > limit:
                    raise self._limit_error()
                held.append(samples)
                count += samples.size
                while count >= size:
                    joined = np.concatenate(held)
                    yield joined[:size].astype(np.float32) / 32768.0
                    rest = joined[size:]
                    held, count = ([rest] if rest.size else []), rest.size
        except AudioError:
            raise
        except av.error.FFmpegError as exc:
            raise AudioError(f"could not decode the upload as audio: {_reason(exc)}") from None
        if count:
            yield np.concatenate(held).astype(np.float32) / 32768.0
        self._check_complete()

    def _check_complete(self) -> None:
        decoded = self.decoded_samples / SAMPLE_RATE
        if decoded == 0:
            raise AudioError("the upload contains no audio (0 seconds decoded)")
        declared = self.exact_seconds
        if declared is not None and decoded < 0.9 * declared and declared - decoded > 0.5:
            raise AudioError(
                f"the upload looks truncated: its header promises {declared:.1f} s of audio "
                f"but only {decoded:.1f} s could be decoded; upload the complete file"
            )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.container.close()


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)  # strerror omits the server's path


def open_audio(path: str, max_hours: float = DEFAULT_MAX_AUDIO_HOURS) -> AudioStream:
    """Open ``path`` by its content (the upload's extension is only a hint) and check the
    length its header states against ``max_hours`` before any sample is decoded."""
    if os.path.getsize(path) == 0:
        raise AudioError("the uploaded file is empty")
    try:
        container = av.open(path, mode="r", metadata_errors="ignore")
    except Exception as exc:  # PyAV raises many types; all mean "not decodable"
        raise AudioError(f"could not decode the upload as audio: {_reason(exc)}") from None
    if not container.streams.audio:
        container.close()
        raise AudioError(
            "the upload has no audio track (a video without sound?): nothing to transcribe"
        )
    stream = container.streams.audio[0]
    seconds = _stream_seconds(container, stream)
    audio = AudioStream(
        path,
        container,
        max_seconds=max_hours * 3600.0,
        header_seconds=seconds,
        exact_seconds=_exact_length(path, container.format.name, seconds),
    )
    if seconds is not None and seconds > audio.max_seconds:
        container.close()
        raise AudioError(
            f"the audio is {_hours(seconds)} long by its header, over this server's limit of "
            f"{_hours(audio.max_seconds)} (--max-audio-hours); split the file, or ask the "
            "operator to raise the limit"
        )
    return audio


def _stream_seconds(container: Any, stream: Any) -> float | None:
    if container.duration is not None:
        return float(container.duration / av.time_base)
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None
