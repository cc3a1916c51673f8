"""Chunked decoding: cut a file at pauses and decode the chunks in parallel on CPU replicas.

Why not faster-whisper's ``BatchedInferencePipeline`` alone: it decodes every chunk of a batch
in one CTranslate2 call on one model replica, and on a small CPU the decoder's matrices are too
small for several threads to share: on this project's 2-core machine, beam search ran about
twice as fast on one thread as on two (bench/RESULTS.md). So the engine loads the model as
several single-thread replicas (``num_workers``), and this module hands the chunks out in small
batches to whichever replica is free, each batch decoded by its own pipeline; the results are
yielded in time order as soon as they are ready, so that progress moves every batch or two.

Chunks are cut where Silero VAD hears a pause, each at most one Whisper window (30 s) long
including the pauses inside it. Two ways to cut:

- *filled* (the default speed): each chunk takes speech up to the 30 s limit, as
  faster-whisper's batched pipeline does; Whisper sees the same long context it was trained on.
- *balanced* (the fast speed): the same number of chunks, of about equal length, so that the
  replicas finish together; meant to go with a shorter encoder input (``encoder_padding``).

``encoder_padding``: Whisper's encoder is trained on 30 s windows and faster-whisper pads every
chunk to one. CTranslate2 also accepts shorter inputs: encoding only the chunk plus this many
seconds of padding costs a fraction of a full window for short chunks. The bench set loses no
accuracy with 3 s of padding, but real recordings are untested, so only the fast speed uses it.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.transcribe import Segment
from faster_whisper.vad import VadOptions, get_speech_timestamps

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30.0
FRAMES_PER_SECOND = 100  # Whisper's mel frames
# The VAD settings of faster-whisper's batched pipeline: pauses of 160 ms are cut points.
_VAD = VadOptions(max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=160)
TICK_SECONDS = 1.0
"""While a batch decodes, progress is reported this often (see ChunkedDecoder.transcribe)."""
ProgressCallback = Callable[[float], None]
PRIOR_SECONDS_PER_SECOND = 0.25
"""The decoding speed assumed until a batch has been timed (the tiny model on one loaded core)."""
PARALLEL_VAD_SECONDS = 60.0
"""Audio of at least this many seconds per replica has its VAD run in parallel pieces."""


@dataclass(frozen=True)
class Chunk:
    """A stretch of the audio, in samples, decoded as one Whisper window."""

    start: int
    end: int

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def _vad(audio: np.ndarray, offset: int) -> list[Chunk]:
    return [
        Chunk(offset + s["start"], offset + s["end"]) for s in get_speech_timestamps(audio, _VAD)
    ]


def speech_spans(
    audio: np.ndarray, pool: ThreadPoolExecutor | None = None, parts: int = 1
) -> list[Chunk]:
    """The speech Silero VAD finds, each span at most one window long.

    Silero runs on one thread and takes about a tenth of the decoding time, so long audio is
    cut into ``parts`` pieces analysed at once on ``pool``; a span that the cut split in two
    (the pieces touch at the cut) is joined again if it still fits in a window.
    """
    if pool is None or parts <= 1 or audio.size < parts * PARALLEL_VAD_SECONDS * SAMPLE_RATE:
        return _vad(audio, 0)
    # Cut on Silero's 512-sample frames, so that every piece sees the frames the whole would.
    cuts = [audio.size * k // parts // 512 * 512 for k in range(parts)] + [audio.size]
    pieces = pool.map(lambda k: _vad(audio[cuts[k] : cuts[k + 1]], cuts[k]), range(parts))
    spans: list[Chunk] = []
    for piece in pieces:
        if spans and piece:
            before, after = spans[-1], piece[0]
            touching = (
                after.start - before.end <= _VAD.min_silence_duration_ms * SAMPLE_RATE // 1000
            )
            if touching and after.end - before.start <= WINDOW_SECONDS * SAMPLE_RATE:
                spans[-1] = Chunk(before.start, after.end)
                piece = piece[1:]
        spans.extend(piece)
    return spans


def fill_chunks(spans: Sequence[Chunk], limit_seconds: float = WINDOW_SECONDS) -> list[Chunk]:
    """Join consecutive spans (and the pauses between them) while a chunk stays within limit."""
    limit = limit_seconds * SAMPLE_RATE
    chunks: list[Chunk] = []
    for span in spans:
        if chunks and span.end - chunks[-1].start <= limit:
            chunks[-1] = Chunk(chunks[-1].start, span.end)
        else:
            chunks.append(span)
    return chunks


def balanced_chunks(spans: Sequence[Chunk]) -> list[Chunk]:
    """As many chunks as :func:`fill_chunks` makes, of about equal length.

    Each chunk ends at the span end nearest to its share of the whole (1/n, 2/n, ...), among
    those that keep it within one window.
    """
    count = len(fill_chunks(spans))
    if count <= 1:
        return fill_chunks(spans)
    share = (spans[-1].end - spans[0].start) / count
    limit = WINDOW_SECONDS * SAMPLE_RATE
    chunks: list[Chunk] = []
    first = 0
    while first < len(spans):
        start = spans[first].start
        target = spans[0].start + share * (len(chunks) + 1)
        best = last = first
        while last + 1 < len(spans) and spans[last + 1].end - start <= limit:
            last += 1
            if abs(spans[last].end - target) < abs(spans[best].end - target):
                best = last
        chunks.append(Chunk(start, spans[best].end))
        first = best + 1
    return chunks


def batch_sizes(count: int, replicas: int, size: int) -> list[int]:
    """How many of ``count`` chunks each successive batch decodes (they sum to ``count``).

    Batches go to whichever replica is free next, and their results come back in time order,
    so progress moves each time the oldest batch still decoding is done. The first batch of
    each replica is shorter than the next one's (1, 2, ... of ``size`` when two replicas
    decode batches of 2): the replicas then finish at staggered times, and the first
    segments arrive after one chunk's work.
    """
    replicas = max(1, replicas)
    size = max(1, min(size, math.ceil(count / replicas)))  # few chunks: every replica works
    sizes = [max(1, size * (r + 1) // replicas) for r in range(replicas)]
    out: list[int] = []
    left = count
    for batch in itertools.chain(sizes, itertools.repeat(size)):
        if left <= 0:
            return out
        out.append(min(batch, left))
        left -= out[-1]
    return out


class _ShortEncoderPipeline(BatchedInferencePipeline):
    """A batched pipeline that encodes only as many frames as its longest chunk needs."""

    def __init__(self, model: WhisperModel, padding_seconds: float) -> None:
        super().__init__(model)
        self.padding_seconds = padding_seconds

    def forward(
        self,
        features: np.ndarray,
        tokenizer: Any,
        chunks_metadata: list[dict[str, Any]],
        options: Any,
    ) -> Any:
        longest = max(meta["duration"] for meta in chunks_metadata)
        frames = math.ceil(longest + self.padding_seconds) * FRAMES_PER_SECOND
        if frames < features.shape[-1]:
            features = np.ascontiguousarray(features[..., :frames])
        return super().forward(features, tokenizer, chunks_metadata, options)


class ChunkedDecoder:
    """Decodes one file's chunks on ``replicas`` model replicas at once (one thread each)."""

    def __init__(self, model: WhisperModel, replicas: int) -> None:
        self.model = model
        self.replicas = max(1, replicas)
        self._pool = ThreadPoolExecutor(self.replicas, thread_name_prefix="whisper-replica")
        self.seconds_per_second = PRIOR_SECONDS_PER_SECOND
        """Wall seconds a replica spends per second of speech, learned from past batches."""

    def _pipeline(self, encoder_padding: float | None) -> BatchedInferencePipeline:
        # One pipeline per batch: BatchedInferencePipeline keeps per-call state.
        if encoder_padding is None:
            return BatchedInferencePipeline(self.model)
        return _ShortEncoderPipeline(self.model, encoder_padding)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        balanced: bool = False,
        encoder_padding: float | None = None,
        batch_size: int = 2,
        on_progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> tuple[Generator[Segment, None, None], str]:
        """Return the segments (lazily, in time order) and the language.

        ``kwargs`` go to ``BatchedInferencePipeline.transcribe`` for every batch; batches hold
        at most ``batch_size`` chunks (see :func:`batch_sizes`). While the consumer waits for
        the next batch, ``on_progress`` is called about every ``TICK_SECONDS`` (on the
        consumer's thread, so it may raise to stop) with the share of the speech decoded.
        """
        spans = speech_spans(audio, self._pool, self.replicas)
        chunks = balanced_chunks(spans) if balanced else fill_chunks(spans)
        language = kwargs.pop("language", None)
        if language is None:
            # Detect once for the whole file, so that every batch decodes the same language.
            language = (
                self.model.detect_language(audio)[0] if self.model.model.is_multilingual else "en"
            )
        options = {**kwargs, "language": language, "batch_size": batch_size}
        segments = self._segments(audio, chunks, options, encoder_padding, on_progress)
        return segments, language

    def _segments(
        self,
        audio: np.ndarray,
        chunks: list[Chunk],
        options: dict[str, Any],
        encoder_padding: float | None,
        on_progress: ProgressCallback | None,
    ) -> Generator[Segment, None, None]:
        batches: list[list[Chunk]] = []
        for size in batch_sizes(len(chunks), self.replicas, int(options["batch_size"])):
            first = sum(len(b) for b in batches)
            batches.append(chunks[first : first + size])
        started: dict[int, float] = {}

        def decode(index: int) -> list[Segment]:
            started[index] = time.monotonic()
            segments = self._decode_batch(audio, batches[index], options, encoder_padding)
            self._learn(batches[index], time.monotonic() - started[index])
            return segments

        futures = [self._pool.submit(decode, index) for index in range(len(batches))]
        try:
            for future in futures:
                while on_progress is not None and not _wait(future, TICK_SECONDS):
                    on_progress(self._decoded_share(batches, futures, started))
                yield from future.result()
        finally:
            _settle(futures)  # a consumer that stops early leaves no decoding behind

    def _learn(self, batch: list[Chunk], seconds: float) -> None:
        rate = seconds / max(sum(c.seconds for c in batch), 1.0)
        self.seconds_per_second = (self.seconds_per_second + rate) / 2

    def _decoded_share(
        self,
        batches: list[list[Chunk]],
        futures: list[Future[list[Segment]]],
        started: dict[int, float],
    ) -> float:
        """The share of the speech decoded: finished batches, plus the part of each running
        batch its elapsed time suggests (at this decoder's measured speed, at most 90 %)."""
        now, done, total = time.monotonic(), 0.0, 0.0
        for index, (batch, future) in enumerate(zip(batches, futures, strict=True)):
            seconds = sum(c.seconds for c in batch)
            total += seconds
            if future.done():
                done += seconds
            elif index in started:
                expected = self.seconds_per_second * seconds
                done += seconds * min(0.9, (now - started[index]) / expected)
        return done / total if total else 0.0

    def _decode_batch(
        self,
        audio: np.ndarray,
        batch: list[Chunk],
        options: dict[str, Any],
        encoder_padding: float | None,
    ) -> list[Segment]:
        clips = [{"start": c.start / SAMPLE_RATE, "end": c.end / SAMPLE_RATE} for c in batch]
        segments, _ = self._pipeline(encoder_padding).transcribe(
            audio, clip_timestamps=clips, **options
        )
        return list(segments)


def _wait(future: Future[list[Segment]], seconds: float) -> bool:
    """True once ``future`` is done; False after ``seconds`` if it is not."""
    try:
        future.exception(timeout=seconds)
    except TimeoutError:
        return False
    return True


def _settle(futures: list[Future[list[Segment]]]) -> None:
    running = [future for future in futures if not future.cancel()]  # cancel all queued first
    for future in running:
        future.exception()  # wait for it; its result or error no longer matters
