"""Audio in bounded pieces (engine/audio.py) and chunks found piece by piece (engine/speech.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import realset
from faster_whisper import decode_audio
from faster_whisper.utils import get_assets_path
from faster_whisper.vad import SileroVADModel, collect_chunks, get_speech_timestamps, get_vad_model

from whispercli.server.engine.audio import SAMPLE_RATE, AudioError, open_audio
from whispercli.server.engine.speech import (
    VAD,
    VAD_BATCH_FRAMES,
    BoundedSileroVad,
    Chunk,
    Chunker,
    Span,
    bound_vad_batches,
)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 45 s of real speech with pauses (several bench/real clips in a row)."""
    names = ["jfk", "austen_0870", "wizard", "digits", "austen_0920", "arctic_a0024", "jfk"]
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    return realset.write_joined(path, names, gap=0.5)


def test_pieces_are_bounded_and_add_up_to_the_whole_file(speech: Path) -> None:
    audio = open_audio(str(speech))
    pieces = list(audio.pieces(seconds=10.0))
    audio.close()
    assert max(p.size for p in pieces) == 10 * SAMPLE_RATE
    whole = decode_audio(str(speech))
    joined = np.concatenate(pieces)
    assert joined.size == whole.size
    assert np.abs(joined - whole).max() < 1e-3
    assert audio.header_seconds == pytest.approx(whole.size / SAMPLE_RATE, abs=0.01)


def test_chunks_found_piece_by_piece_match_the_batched_pipelines(speech: Path) -> None:
    whole = decode_audio(str(speech))
    _, expected = collect_chunks(whole, get_speech_timestamps(whole, VAD), max_duration=30.0)
    audio = open_audio(str(speech))
    chunker, found = Chunker(), []
    pieces = list(audio.pieces())
    for i, piece in enumerate(pieces):
        found += list(chunker.feed(piece, final=i == len(pieces) - 1))
    assert [c.index for c in found] == list(range(len(found)))
    assert len(found) == len(expected)
    for chunk, meta in zip(found, expected, strict=True):
        assert chunk.seconds <= 30.0
        assert chunk.seconds == pytest.approx(meta["duration"], abs=0.5)
    ends = [c.end_seconds for c in found]
    assert ends == sorted(ends)


def test_the_bounded_vad_gives_faster_whispers_probabilities(speech: Path) -> None:
    """BoundedSileroVad runs the model a few seconds at a time; the probabilities (so the spans
    get_speech_timestamps makes of them) are faster-whisper's own, to the bit, on 45 s."""
    library = SileroVADModel(str(Path(get_assets_path()) / "silero_vad_v6.onnx"))
    bounded = SileroVADModel(str(Path(get_assets_path()) / "silero_vad_v6.onnx"))
    bounded.__class__ = BoundedSileroVad
    whole = decode_audio(str(speech))
    padded = np.pad(whole, (0, 512 - whole.size % 512))
    assert padded.size // 512 > 3 * VAD_BATCH_FRAMES
    expected = library(padded.copy())
    got = bounded(padded.copy())
    assert got.shape == expected.shape and np.array_equal(got, expected)
    bound_vad_batches()  # the model every get_speech_timestamps in this process uses
    assert isinstance(get_vad_model(), BoundedSileroVad)


def test_chunk_times_map_back_to_the_file_with_the_pauses() -> None:
    spans = (Span(16000, 48000), Span(160000, 192000))  # 1-3 s and 10-12 s of the file
    chunk = Chunk(0, np.zeros(64000, np.float32), spans)
    assert chunk.file_time(0.5) == pytest.approx(1.5)
    assert chunk.file_time(2.5) == pytest.approx(10.5)
    assert chunk.file_time(2.0, is_end=True) == pytest.approx(3.0)
    assert chunk.file_time(2.0) == pytest.approx(10.0)
    assert chunk.end_seconds == pytest.approx(12.0)


def test_a_chunk_halves_at_a_span_border_and_counts_the_speech_after_a_time() -> None:
    """What a cut-short chunk's second decode uses (decode.RESCUE_TAIL_SECONDS)."""
    spans = (Span(0, 16000), Span(32000, 48000), Span(64000, 112000), Span(128000, 144000))
    audio = np.arange(96000, dtype=np.float32)  # 1 + 1 + 3 + 1 s of speech, packed
    chunk = Chunk(3, audio, spans)
    assert chunk.speech_after(0.0) == pytest.approx(6.0)
    assert chunk.speech_after(2.5) == pytest.approx(4.5)  # from the middle of the second span
    assert chunk.speech_after(4.5) == pytest.approx(3.5)  # inside the third
    assert chunk.speech_after(9.0) == 0.0
    first, second = chunk.halves()
    assert (first.spans, second.spans) == (spans[:2], spans[2:])  # borders at 1, 2, 5 s of 6
    assert np.array_equal(np.concatenate([first.audio, second.audio]), audio)
    assert (first.index, second.index) == (3, 4)  # the second takes the next place
    assert first.half and second.half and not second.last
    assert second.file_time(0.5) == pytest.approx(4.5)
    two = Chunk(0, np.zeros(32000, np.float32), spans[:2])
    assert [h.spans for h in two.halves()] == [spans[:1], spans[1:2]]


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"not audio at all" * 64, "could not decode the upload as audio")],
)
def test_bad_files_are_audio_errors(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad.mp3"
    path.write_bytes(data)
    with pytest.raises(AudioError, match=message):
        audio = open_audio(str(path))
        list(audio.pieces())
