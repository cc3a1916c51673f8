"""Where the speech is: Silero VAD over pieces of audio, packed into Whisper-window chunks.

:class:`Chunker` is fed the audio piece by piece (engine.audio) and yields :class:`Chunk` s in
time order as soon as they are complete. A chunk is what faster-whisper's
``BatchedInferencePipeline`` decodes as one window: the speech spans Silero finds (pauses of
160 ms are cut points, each span at most 30 s), the silence between them dropped, packed while
their speech fits in one window. Cutting the same way keeps the pipeline's accuracy (the bench
measures it); packing speech without the silences keeps the windows few.

Memory stays bounded: the chunker holds at most the current piece, one span carried over from
the previous piece (a span that touches a piece's end may go on in the next one, so it waits
for it) and the chunk being packed; and the VAD runs its model ``VAD_BATCH_FRAMES`` at a time
(:func:`bound_vad_batches`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from faster_whisper import vad
from faster_whisper.vad import VadOptions, get_speech_timestamps

from whispercli.server.engine.audio import SAMPLE_RATE
from whispercli.server.engine.plans import WINDOW_SECONDS

VAD = VadOptions(max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=160)
"""faster-whisper's batched pipeline's VAD settings."""
_TOUCH_SAMPLES = SAMPLE_RATE * VAD.speech_pad_ms // 1000 + 512
"""A span ending this close to a piece's end may continue in the next piece."""
VAD_BATCH_FRAMES = 256
"""Frames of 32 ms the VAD model runs in one call (about 8 s of audio)."""


class BoundedSileroVad(vad.SileroVADModel):
    """faster-whisper's Silero VAD run ``VAD_BATCH_FRAMES`` frames per ONNX call.

    faster-whisper runs up to 10,000 frames (320 s) in one call, and the call's buffers grow
    with it: on the engine's 120 s pieces about 75 MiB at once, on top of the decoders' (the
    20-minute job's peak fell by about 50 MiB, bench/engine_memory.py). This is faster-whisper
    1.2's ``__call__`` with a smaller batch; each frame still gets the previous frame's last
    64 samples as context and the model's state is carried between calls as faster-whisper
    carries it between its own batches, so the probabilities are the same
    (tests/server/engine/test_audio_pieces.py compares them).
    """

    def __call__(
        self, audio: np.ndarray, num_samples: int = 512, context_size_samples: int = 64
    ) -> np.ndarray:
        frames = audio.reshape(-1, num_samples)
        # As faster-whisper does, to the sample: the view's last row zeroed (in ``audio`` too,
        # the padded copy get_speech_timestamps made), then rolled to be the first's context.
        context = frames[..., -context_size_samples:]
        context[-1] = 0
        context = np.roll(context, 1, 0)
        framed = np.concatenate([context, frames], 1)
        h = np.zeros((1, 1, 128), np.float32)
        c = np.zeros((1, 1, 128), np.float32)
        outputs = []
        for start in range(0, framed.shape[0], VAD_BATCH_FRAMES):
            batch = framed[start : start + VAD_BATCH_FRAMES]
            output, h, c = self.session.run(None, {"input": batch, "h": h, "c": c})
            outputs.append(output)
        return np.concatenate(outputs, axis=0)


def bound_vad_batches() -> None:
    """Make faster-whisper's shared VAD model (every ``get_speech_timestamps`` in this process:
    the chunker's and the sequential path's) a :class:`BoundedSileroVad`."""
    model = vad.get_vad_model()
    if type(model) is vad.SileroVADModel:
        model.__class__ = BoundedSileroVad


@dataclass(frozen=True)
class Span:
    """Speech Silero found: samples ``start``..``end`` of the whole file."""

    start: int
    end: int

    @property
    def samples(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Chunk:
    """One window's worth of speech: ``audio`` is its spans' samples joined."""

    index: int
    audio: np.ndarray
    spans: tuple[Span, ...]
    last: bool = False
    """The file's last chunk (the chunker had seen the end of the audio)."""
    half: bool = False
    """One half of a chunk cut in two (:meth:`halves`): encoded in a window sized to it."""

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE

    @property
    def end_seconds(self) -> float:
        """Where the chunk's speech ends in the file."""
        return self.spans[-1].end / SAMPLE_RATE

    def speech_after(self, seconds: float) -> float:
        """Seconds of the chunk's speech after ``seconds`` (a time in the file)."""
        sample = int(seconds * SAMPLE_RATE)
        return sum(max(0, s.end - max(s.start, sample)) for s in self.spans) / SAMPLE_RATE

    def speech_before(self, seconds: float) -> float:
        """Seconds of the chunk's speech before ``seconds`` (a time in the file)."""
        return self.seconds - self.speech_after(seconds)

    def halves(self) -> tuple[Chunk, Chunk]:
        """The chunk cut in two at the border between spans nearest the middle of its speech
        (it needs two spans at least)."""
        ends = np.cumsum([s.samples for s in self.spans])[:-1]  # where each border falls
        cut = int(np.argmin(np.abs(ends - self.audio.size / 2))) + 1
        at = int(ends[cut - 1])
        return (
            Chunk(self.index, self.audio[:at], self.spans[:cut], half=True),
            Chunk(self.index + 1, self.audio[at:], self.spans[cut:], self.last, half=True),
        )

    def file_time(self, seconds: float, *, is_end: bool = False) -> float:
        """A time in the chunk's audio -> the same moment in the file (pauses put back).

        A time on the border of two spans is the first one's end when ``is_end``, else the
        second one's start.
        """
        offsets = np.cumsum([0] + [s.samples for s in self.spans[:-1]]) / SAMPLE_RATE
        pick = bisect.bisect_left if is_end else bisect.bisect_right
        index = min(max(pick(offsets.tolist(), seconds) - 1, 0), len(self.spans) - 1)
        local = seconds - float(offsets[index])
        span = self.spans[index]
        return min(span.start / SAMPLE_RATE + max(local, 0.0), span.end / SAMPLE_RATE)


class Chunker:
    """Turns a stream of audio pieces into chunks, in order, as soon as each is complete."""

    def __init__(self, window_seconds: float = WINDOW_SECONDS) -> None:
        self.limit = int(window_seconds * SAMPLE_RATE)
        self._carry = np.zeros(0, np.float32)
        self._carry_start = 0
        self._next_start = 0  # file position of the next piece's first sample
        self._packed: list[tuple[Span, np.ndarray]] = []
        self._count = 0

    def feed(self, piece: np.ndarray, *, final: bool = False) -> Iterator[Chunk]:
        """Take the next piece; yield the chunks it completes (all of them when ``final``)."""
        buffer = np.concatenate([self._carry, piece]) if self._carry.size else piece
        start = self._carry_start if self._carry.size else self._next_start
        self._next_start += piece.size
        spans = [Span(s["start"], s["end"]) for s in get_speech_timestamps(buffer, VAD)]
        self._carry = np.zeros(0, np.float32)
        if spans and not final and spans[-1].end >= buffer.size - _TOUCH_SAMPLES:
            held = spans.pop()
            self._carry, self._carry_start = buffer[held.start :].copy(), start + held.start
        for span in spans:
            yield from self._pack(
                Span(start + span.start, start + span.end), buffer[span.start : span.end]
            )
        if final:
            yield from self._emit(last=True)

    def _pack(self, span: Span, samples: np.ndarray) -> Iterator[Chunk]:
        packed = sum(s.samples for s, _ in self._packed)
        if self._packed and packed + span.samples > self.limit:
            yield from self._emit()
        self._packed.append((span, samples.copy()))

    def _emit(self, last: bool = False) -> Iterator[Chunk]:
        if not self._packed:
            return
        spans = tuple(s for s, _ in self._packed)
        audio = np.concatenate([a for _, a in self._packed])
        self._packed = []
        yield Chunk(self._count, audio, spans, last)
        self._count += 1
