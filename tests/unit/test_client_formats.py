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


# What openai-whisper's writers (whisper/utils.py of openai-whisper 20250625: WriteSRT, WriteVTT,
# WriteTSV, WriteTXT with default options) print for these segments: every cue ends with a blank
# line, the last one too; with word timings, cues run from the first word to the last.
WHISPER_PLAIN = {
    "text": "x",
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello --> there."},
        {"id": 1, "start": 1.5, "end": 3661.25, "text": " Second line. "},
    ],
}
WHISPER_WORDS = {
    "text": "x",
    "segments": [
        {"id": 0, "start": 0.0, "end": 2.0, "text": " Hi you.", "words": [
            {"start": 0.12, "end": 0.5, "word": " Hi", "probability": 0.9},
            {"start": 0.6, "end": 1.04, "word": " you-->.", "probability": 0.9},
        ]},
        {"id": 1, "start": 2.0, "end": 4.0, "text": " Bye.", "words": [
            {"start": 2.2, "end": 2.9, "word": " Bye.", "probability": 0.9},
        ]},
    ],
}  # fmt: skip
WHISPER_OUTPUT = {
    ("plain", "srt"): "1\n00:00:00,000 --> 00:00:01,500\nHello -> there.\n\n"
    "2\n00:00:01,500 --> 01:01:01,250\nSecond line.\n\n",
    ("plain", "vtt"): "WEBVTT\n\n00:00.000 --> 00:01.500\nHello -> there.\n\n"
    "00:01.500 --> 01:01:01.250\nSecond line.\n\n",
    ("plain", "tsv"): "start\tend\ttext\n0\t1500\tHello --> there.\n1500\t3661250\tSecond line.\n",
    ("plain", "txt"): "Hello --> there.\nSecond line.\n",
    ("words", "srt"): "1\n00:00:00,120 --> 00:00:01,040\nHi you-->.\n\n"
    "2\n00:00:02,200 --> 00:00:02,900\nBye.\n\n",
    ("words", "vtt"): "WEBVTT\n\n00:00.120 --> 00:01.040\nHi you-->.\n\n"
    "00:02.200 --> 00:02.900\nBye.\n\n",
    ("words", "tsv"): "start\tend\ttext\n0\t2000\tHi you.\n2000\t4000\tBye.\n",
    ("words", "txt"): "Hi you.\nBye.\n",
}


@pytest.mark.parametrize(("kind", "fmt"), sorted(WHISPER_OUTPUT))
def test_byte_identical_to_openai_whisper_writers(kind: str, fmt: str) -> None:
    result = Result.from_dict(WHISPER_PLAIN if kind == "plain" else WHISPER_WORDS)
    assert formats.render(result, fmt) == WHISPER_OUTPUT[(kind, fmt)]
