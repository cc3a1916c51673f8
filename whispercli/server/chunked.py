"""Chunked decoding: cut a file at pauses and decode the chunks in parallel on CPU replicas.

Why not faster-whisper's ``BatchedInferencePipeline`` alone: it decodes every chunk of a batch
in one CTranslate2 call on one model replica, and on a small CPU the decoder's matrices are too
small for several threads to share: on this project's 2-core machine, beam search ran about
twice as fast on one thread as on two (bench/RESULTS.md). So the engine loads the model as
several single-thread replicas (``num_workers``), and this module gives each replica its own
contiguous group of chunks, decoded as a batch by its own pipeline, all at once.

Chunks are cut where Silero VAD hears a pause, each at most one Whisper window (30 s) long
including the pauses inside it. Two ways to cut:

- *filled* (the default profile): each chunk takes speech up to the 30 s limit, as
  faster-whisper's batched pipeline does; Whisper sees the same long context it was trained on.
- *balanced* (the fast profile): the same number of chunks, of about equal length, so that the
  replicas finish together; meant to go with a shorter encoder input (``encoder_padding``).

``encoder_padding``: Whisper's encoder is trained on 30 s windows and faster-whisper pads every
chunk to one. CTranslate2 also accepts shorter inputs: encoding only the chunk plus this many
seconds of padding costs a fraction of a full window for short chunks. The bench set loses no
accuracy with 3 s of padding, but real recordings are untested, so only the fast profile uses it.
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
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


def _cost(chunk: Chunk) -> float:
    """Relative work of one chunk: a fixed part (encoder, set-up) plus its length."""
    return 0.6 + chunk.seconds / WINDOW_SECONDS


def split_groups(chunks: Sequence[Chunk], groups: int) -> list[list[Chunk]]:
    """Cut ``chunks`` into at most ``groups`` contiguous runs of about equal work.

    Contiguous, so that each replica's text follows on and the results come back in order.
    Greedy against an even share of the work; a run never starts empty.
    """
    if groups <= 1 or len(chunks) <= 1:
        return [list(chunks)] if chunks else []
    groups = min(groups, len(chunks))
    share = sum(_cost(c) for c in chunks) / groups
    runs: list[list[Chunk]] = [[]]
    done = 0.0
    for index, chunk in enumerate(chunks):
        left_after = len(chunks) - index
        must_open = len(runs) + left_after <= groups  # one chunk per remaining run
        overshoot = done + _cost(chunk) / 2 > share * len(runs)
        if runs[-1] and len(runs) < groups and (must_open or overshoot):
            runs.append([])
        runs[-1].append(chunk)
        done += _cost(chunk)
    return runs


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

    def _pipeline(self, encoder_padding: float | None) -> BatchedInferencePipeline:
        # One pipeline per group: BatchedInferencePipeline keeps per-call state.
        if encoder_padding is None:
            return BatchedInferencePipeline(self.model)
        return _ShortEncoderPipeline(self.model, encoder_padding)

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        balanced: bool = False,
        encoder_padding: float | None = None,
        batch_size: int = 4,
        **kwargs: Any,
    ) -> tuple[Generator[Segment, None, None], str]:
        """Return the segments (lazily, in time order) and the language.

        ``kwargs`` go to ``BatchedInferencePipeline.transcribe`` for every group. The work is
        done in rounds of ``replicas * batch_size`` chunks, so progress arrives per group.
        """
        spans = speech_spans(audio, self._pool, self.replicas)
        chunks = balanced_chunks(spans) if balanced else fill_chunks(spans)
        language = kwargs.pop("language", None)
        if language is None:
            # Detect once for the whole file, so that every group decodes the same language.
            language = (
                self.model.detect_language(audio)[0] if self.model.model.is_multilingual else "en"
            )
        options = {**kwargs, "language": language, "batch_size": batch_size}
        return self._segments(audio, chunks, options, encoder_padding), language

    def _segments(
        self,
        audio: np.ndarray,
        chunks: list[Chunk],
        options: dict[str, Any],
        encoder_padding: float | None,
    ) -> Generator[Segment, None, None]:
        step = self.replicas * int(options["batch_size"])
        for first in range(0, len(chunks), step):
            groups = split_groups(chunks[first : first + step], self.replicas)
            futures = [
                self._pool.submit(self._decode_group, audio, group, options, encoder_padding)
                for group in groups
            ]
            try:
                for future in futures:
                    yield from future.result()
            finally:
                _settle(futures)  # a consumer that stops early leaves no decoding behind

    def _decode_group(
        self,
        audio: np.ndarray,
        group: list[Chunk],
        options: dict[str, Any],
        encoder_padding: float | None,
    ) -> list[Segment]:
        clips = [{"start": c.start / SAMPLE_RATE, "end": c.end / SAMPLE_RATE} for c in group]
        segments, _ = self._pipeline(encoder_padding).transcribe(
            audio, clip_timestamps=clips, **options
        )
        return list(segments)


def _settle(futures: list[Future[list[Segment]]]) -> None:
    for future in futures:
        if not future.cancel():
            future.exception()  # wait for it; its result or error no longer matters
