"""formats.py: openai-whisper's output formats, read back with real parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import srt
import webvtt

import whispercli.formats as formats
from whispercli.protocol import Result, Segment

RESULT = Result(
    text=" Hello there. General --> Kenobi.",
    segments=[
        Segment(0, 0.0, 1.5, " Hello there."),
        Segment(1, 1.5, 3661.25, " General --> Kenobi.\tTab"),
    ],
    language="en",
)


def test_timestamps() -> None:
    assert formats.format_timestamp(3661.25, True, ",") == "01:01:01,250"
    assert formats.format_timestamp(61.0004, False, ".") == "01:01.000"
    assert formats.format_timestamp(-1, True, ",") == "00:00:00,000"


def test_txt_is_one_stripped_segment_per_line() -> None:
    # As whisper's WriteTXT: "-->" is only rewritten in subtitles.
    assert formats.render(RESULT, "txt") == "Hello there.\nGeneral --> Kenobi.\tTab\n"


def test_srt_and_vtt_parse_with_real_readers(tmp_path: Path) -> None:
    subs = list(srt.parse(formats.render(RESULT, "srt")))
    assert [s.index for s in subs] == [1, 2]
    assert subs[1].end.total_seconds() == pytest.approx(3661.25)
    assert subs[1].content.startswith("General -> Kenobi.")
    vtt = formats.render(RESULT, "vtt")
    assert vtt.startswith("WEBVTT\n\n00:00.000 --> 00:01.500\n")
    path = tmp_path / "x.vtt"
    path.write_text(vtt)
    captions = webvtt.read(str(path)).captions
    assert [c.start_in_seconds for c in captions] == [0, 1]
    assert captions[1].end == "01:01:01.250"


def test_tsv_uses_integer_milliseconds_and_no_tabs_in_text() -> None:
    lines = formats.render(RESULT, "tsv").splitlines()
    assert lines == [
        "start\tend\ttext",
        "0\t1500\tHello there.",
        "1500\t3661250\tGeneral --> Kenobi. Tab",
    ]


def test_json_round_trips_the_result() -> None:
    assert Result.from_dict(json.loads(formats.render(RESULT, "json"))) == RESULT


def test_write_names_files_after_the_stem_and_expands_all(tmp_path: Path) -> None:
    written = formats.write(RESULT, "talk", tmp_path, ["all"])
    assert [p.name for p in written] == [f"talk.{f}" for f in formats.FORMATS]
    assert formats.expand(["srt", "all", "srt"]) == ["srt", "txt", "vtt", "tsv", "json"]
    with pytest.raises(ValueError, match="docx"):
        formats.expand(["docx"])


# Byte-identity with openai-whisper's writers, options included: test_formats_reference.py.


def _timed(speaker: int, start: float, *words: str) -> Segment:
    timings = [{"start": start + i, "end": start + i + 0.5, "word": w} for i, w in enumerate(words)]
    text = "".join(words)
    return Segment(0, start, start + len(words), text, {"speaker": speaker, "words": timings})


TWO_SPEAKERS = Result(
    text="", segments=[_timed(1, 0.0, " Hi", " there."), _timed(2, 2.0, " Hello", " back.")]
)


def test_speaker_labels_start_every_cue_and_a_new_speaker_starts_a_new_cue() -> None:
    # Without a line count cues follow segments; with one they would run across segments, but
    # a change of speaker still starts a new cue (openai-whisper knows no speakers).
    for options in (formats.PLAIN, formats.SubtitleOptions(max_line_width=40, max_line_count=3)):
        assert formats.render(TWO_SPEAKERS, "srt", options) == (
            "1\n00:00:00,000 --> 00:00:01,500\n[SPEAKER 1] Hi there.\n\n"
            "2\n00:00:02,000 --> 00:00:03,500\n[SPEAKER 2] Hello back.\n\n"
        )
    highlighted = formats.render(TWO_SPEAKERS, "vtt", formats.SubtitleOptions(highlight_words=True))
    assert "00:00.500 --> 00:01.000\n[SPEAKER 1] Hi there.\n" in highlighted  # the gap
    assert "00:02.000 --> 00:02.500\n[SPEAKER 2] <u>Hello</u> back.\n" in highlighted


def test_options_default_to_none_and_say_when_given() -> None:
    assert not formats.PLAIN.given and formats.SubtitleOptions(highlight_words=True).given
    assert formats.SubtitleOptions(max_words_per_line=1).given


def test_a_segment_without_words_among_timed_ones_has_no_cue() -> None:
    """The engine leaves out an empty ``words``; such a segment cuts like openai-whisper's
    ``"words": []`` (no cue) instead of turning the whole result into segment cues."""
    silent = Segment(1, 1.5, 2.0, " ")
    result = Result(text="", segments=[silent, *TWO_SPEAKERS.segments])
    assert formats.has_words(result)
    assert formats.render(result, "srt") == formats.render(TWO_SPEAKERS, "srt")
