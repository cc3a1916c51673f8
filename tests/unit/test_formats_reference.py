"""formats.py against the reference itself: openai-whisper's own writers, fed the same results.

Why this way: openai-whisper's ``whisper/__init__.py`` imports torch, but its writers live in
``whisper/utils.py``, which imports only the standard library. The test session downloads the
pinned sdist from PyPI once (``pip download --no-deps``, as the OctoAI seed test installs its
SDK; its SHA-256 is checked), loads that one file by path, and compares its output with ours,
byte for byte: for a grid of every option on hand-made results, and for results and options
Hypothesis generates. Nothing of openai-whisper is copied into this repository, and no output
is recorded by hand: the reference runs on every CI run (no torch, about 10 s, once).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import io
import itertools
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import whispercli.formats as formats
from whispercli.protocol import Result

OPENAI_WHISPER = "openai-whisper==20250625"
SDIST = "openai_whisper-20250625.tar.gz"
SDIST_SHA256 = "37a91a3921809d9f44748ffc73c0a55c9f366c85a3ef5c2ae0cc09540432eb96"
UTILS = "openai_whisper-20250625/whisper/utils.py"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """openai-whisper's ``whisper/utils.py``, from the pinned sdist, imported without torch."""
    folder = tmp_path_factory.mktemp("openai-whisper")
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
    subprocess.run(
        [*pip, "-d", str(folder), OPENAI_WHISPER],
        check=True,
        timeout=300,
    )
    sdist = folder / SDIST
    assert hashlib.sha256(sdist.read_bytes()).hexdigest() == SDIST_SHA256, "not the pinned sdist"
    with tarfile.open(sdist) as archive:
        member = archive.extractfile(UTILS)
        assert member is not None
        path = folder / "openai_whisper_utils.py"
        path.write_bytes(member.read())
    spec = importlib.util.spec_from_file_location("openai_whisper_utils", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def whisper_writes(
    reference: ModuleType, result: dict[str, Any], fmt: str, options: formats.SubtitleOptions
) -> str:
    """What openai-whisper's writer for ``fmt`` prints for ``result`` with these options."""
    writer = {
        "srt": reference.WriteSRT,
        "vtt": reference.WriteVTT,
        "txt": reference.WriteTXT,
        "tsv": reference.WriteTSV,
    }[fmt](".")
    out = io.StringIO()
    writer.write_result(
        copy.deepcopy(result),
        file=out,
        max_line_width=options.max_line_width,
        max_line_count=options.max_line_count,
        max_words_per_line=options.max_words_per_line,
        highlight_words=options.highlight_words,
    )
    return out.getvalue()


def _word(start: float, end: float, word: str) -> dict[str, Any]:
    return {"start": start, "end": end, "word": word, "probability": 0.9}


def _segment(index: int, words: list[dict[str, Any]], **times: float) -> dict[str, Any]:
    start = times.get("start", words[0]["start"] if words else 0.0)
    end = times.get("end", words[-1]["end"] if words else start)
    text = "".join(w["word"] for w in words)
    return {"id": index, "start": start, "end": end, "text": text, "words": words}


# A talk with what the options react to: words longer than a line, punctuation glued to words,
# "-->" inside a word, pauses over 3 s inside a segment and between segments (and one of 2.9 s),
# a segment without words, timestamps past an hour, words that touch (no gap to highlight).
TALK = {
    "text": "",
    "language": "en",
    "segments": [
        _segment(0, [
            _word(0.0, 0.42, " So,"), _word(0.42, 0.9, " my"), _word(1.02, 1.5, " fellow"),
            _word(1.5, 2.31, " Americans:"), _word(2.4, 2.6, " ask"), _word(2.6, 2.88, " not"),
            _word(6.5, 6.9, " what"), _word(6.9, 7.3, " your"), _word(7.3, 8.12, " country"),
        ]),
        _segment(1, [
            _word(8.4, 8.6, " can"), _word(8.6, 8.75, " do"), _word(8.75, 9.0, " for"),
            _word(9.0, 9.4, " you-->"), _word(9.4, 9.5, "."),
        ]),
        _segment(2, [], start=9.5, end=10.0),
        _segment(3, [
            _word(14.2, 15.0, " Antidisestablishmentarianism"), _word(15.0, 15.3, " is"),
            _word(15.3, 15.6, " a"), _word(18.2, 18.9, " word."),
        ]),
        _segment(4, [
            _word(3599.9, 3600.3, " Hours"), _word(3600.3, 3600.8, " later,"),
            _word(3600.8, 3601.2, " still"), _word(3601.2, 3601.9, " talking."),
        ]),
    ],
}  # fmt: skip
SHORT = {"text": "", "segments": [_segment(0, [_word(0.12, 0.5, " Hi")])]}
NO_WORDS = {
    "text": "",
    "segments": [
        {"id": 0, "start": 0.0, "end": 1.5, "text": " Hello --> there."},
        {"id": 1, "start": 1.5, "end": 3661.25, "text": " Second\tline. "},
    ],
}
RESULTS = {"talk": TALK, "short": SHORT, "no words": NO_WORDS}

GRID = [
    formats.SubtitleOptions(width, count, per_line, highlight)
    for width, count, per_line, highlight in itertools.product(
        (None, 1, 8, 20, 42), (None, 1, 2, 3), (None, 1, 2, 3, 7), (False, True)
    )
]


@pytest.mark.parametrize("fmt", formats.SUBTITLE_FORMATS)
@pytest.mark.parametrize("name", sorted(RESULTS))
def test_every_option_combination_is_byte_identical(
    reference: ModuleType, name: str, fmt: str
) -> None:
    result = Result.from_dict(RESULTS[name])
    for options in GRID:
        expected = whisper_writes(reference, RESULTS[name], fmt, options)
        assert formats.render(result, fmt, options) == expected, options


def test_the_grid_reaches_every_kind_of_cut(reference: ModuleType) -> None:
    """The grid is worth its name: the options change the reference's output, and differently."""
    outputs = {whisper_writes(reference, TALK, "srt", options) for options in GRID}
    assert len(outputs) > 40
    highlighted = whisper_writes(reference, TALK, "srt", formats.SubtitleOptions(20, 2, None, True))
    assert "<u>Americans:</u>" in highlighted and "\nAmericans:" in highlighted


@pytest.mark.parametrize("fmt", ["txt", "tsv"])
def test_the_other_writers_ignore_the_options_as_openai_whispers_do(
    reference: ModuleType, fmt: str
) -> None:
    options = formats.SubtitleOptions(8, 2, 3, True)
    for raw in RESULTS.values():
        expected = whisper_writes(reference, raw, fmt, options)
        assert formats.render(Result.from_dict(raw), fmt, options) == expected
        assert expected == whisper_writes(reference, raw, fmt, formats.PLAIN)


def test_files_written_are_the_same_bytes(reference: ModuleType, tmp_path: Path) -> None:
    options = formats.SubtitleOptions(max_line_width=20, max_line_count=2, highlight_words=True)
    theirs, ours = tmp_path / "theirs", tmp_path / "ours"
    theirs.mkdir()
    kwargs = {"max_line_width": 20, "max_line_count": 2, "highlight_words": True}
    for writer in (reference.WriteSRT, reference.WriteVTT, reference.WriteTXT, reference.WriteTSV):
        writer(str(theirs))(copy.deepcopy(TALK), "talk.mp3", **kwargs)
    formats.write(Result.from_dict(TALK), "talk", ours, ["srt", "vtt", "txt", "tsv"], options)
    for name in ("talk.srt", "talk.vtt", "talk.txt", "talk.tsv"):
        assert (ours / name).read_bytes() == (theirs / name).read_bytes(), name


# Generated results: words with or without a leading space, punctuation, "-->", unicode;
# gaps up to 5 s (over and under the 3 s pause), touching words, empty segments.
WORD_TEXT = st.builds(
    lambda space, body: space + body,
    st.sampled_from([" ", " ", " ", ""]),
    st.one_of(
        st.sampled_from(["a", "I", "the", "Kenobi,", "well.", "-->", "ça", "日本", "'s", "..."]),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12),
    ),
)


@st.composite
def whisper_results(draw: st.DrawFn) -> dict[str, Any]:
    clock, segments = draw(st.floats(0, 4000, allow_nan=False)), []
    for index in range(draw(st.integers(1, 4))):
        words = []
        for text in draw(st.lists(WORD_TEXT, max_size=10)):
            clock += draw(st.sampled_from([0.0, 0.01, 0.2, 2.9, 3.1, 5.0]))
            start, clock = clock, clock + draw(st.floats(0, 1.5, allow_nan=False))
            words.append(_word(round(start, draw(st.sampled_from([2, 3, 6]))), clock, text))
        segments.append(_segment(index, words, start=clock, end=clock) if not words else
                         _segment(index, words))  # fmt: skip
    return {"text": "", "segments": segments}


LIMIT = st.one_of(st.none(), st.integers(0, 60))
SMALL = st.one_of(st.none(), st.integers(0, 6))


@settings(max_examples=300, deadline=None)
@given(
    raw=whisper_results(),
    options=st.builds(formats.SubtitleOptions, LIMIT, SMALL, SMALL, st.booleans()),
    fmt=st.sampled_from(formats.SUBTITLE_FORMATS),
)
def test_generated_results_are_byte_identical(
    reference: ModuleType, raw: dict[str, Any], options: formats.SubtitleOptions, fmt: str
) -> None:
    assert formats.render(Result.from_dict(raw), fmt, options) == whisper_writes(
        reference, raw, fmt, options
    )
