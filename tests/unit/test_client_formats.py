"""formats.py: openai-whisper's output formats, read back with real parsers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import srt
import webvtt

from whispercli import formats
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
    assert formats.render(RESULT, "txt") == "Hello there.\nGeneral -> Kenobi.\tTab\n"


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
        "1500\t3661250\tGeneral -> Kenobi. Tab",
    ]


def test_json_round_trips_the_result() -> None:
    assert Result.from_dict(json.loads(formats.render(RESULT, "json"))) == RESULT


def test_write_names_files_after_the_stem_and_expands_all(tmp_path: Path) -> None:
    written = formats.write(RESULT, "talk", tmp_path, ["all"])
    assert [p.name for p in written] == [f"talk.{f}" for f in formats.FORMATS]
    assert formats.expand(["srt", "all", "srt"]) == ["srt", "txt", "vtt", "tsv", "json"]
    with pytest.raises(ValueError, match="docx"):
        formats.expand(["docx"])
