"""The small pieces of the OpenAI protocol and of the live transcript, alone: the client's SSE
reader and word placement, the server's ordering of partial segments, and the terminal
printer, whose output must be the txt format's byte for byte."""

from __future__ import annotations

import pytest

import whispercli.formats as formats
from whispercli.backends.openai import result_of, sse_data
from whispercli.cli.live import LiveText
from whispercli.protocol import JobInfo, Result, Segment
from whispercli.server.vendors.openai import ready_segments

STREAM = (
    b": keep-alive\r\n\r\n"
    b'data: {"type": "transcript.text.delta", "delta": " Hi"}\r\n\r\n'
    b"event: ignored\n"
    b'data: {"type":\n'
    b'data:  "transcript.text.done"}\n\n'
    b"data: [DONE]\n\n"
)


@pytest.mark.parametrize("size", [1, 2, 5, 1000])
def test_sse_data_in_any_chunking(size: int) -> None:
    chunks = iter(STREAM[i : i + size] for i in range(0, len(STREAM), size))
    assert list(sse_data(chunks)) == [
        '{"type": "transcript.text.delta", "delta": " Hi"}',
        '{"type":\n "transcript.text.done"}',
        "[DONE]",
    ]


def test_words_go_to_the_segment_they_are_spoken_in() -> None:
    body = {
        "text": " A b. C d.",
        "segments": [
            {"id": 0, "start": 0.0, "end": 1.0, "text": " A b."},
            {"id": 1, "start": 1.5, "end": 3.0, "text": " C d."},
        ],
        "words": [
            {"word": "A", "start": 0.0, "end": 0.4},
            {"word": "b.", "start": 0.5, "end": 1.3},  # runs past its segment: middle 0.9
            {"word": "C", "start": 1.4, "end": 1.7},  # starts before its segment: middle 1.55
            {"word": "d.", "start": 2.0, "end": 2.9},
        ],
    }
    result = result_of(body)
    assert [[w["word"] for w in s.extra["words"]] for s in result.segments] == [
        [" A", " b."],
        [" C", " d."],
    ]
    assert "words" not in result.extra
    assert formats.to_srt(result).startswith("1\n00:00:00,000 --> 00:00:01,300\nA b.\n")


def test_ready_segments_wait_for_those_before_them() -> None:
    partial = [{"id": 0, "text": "a"}, {"id": 2, "text": "c"}]
    assert [s["text"] for s in ready_segments(partial, 0)] == ["a"]
    assert ready_segments(partial, 1) == []
    assert [s["text"] for s in ready_segments([*partial, {"id": 1, "text": "b"}], 1)] == ["b", "c"]
    assert [s["text"] for s in ready_segments([{"text": "x"}, {"text": "y"}], 0)] == ["x", "y"]


def _segments(*texts: str) -> list[Segment]:
    return [Segment(i, float(i), i + 1.0, t) for i, t in enumerate(texts)]


def test_live_text_prints_the_txt_format_as_segments_come(
    capsys: pytest.CaptureFixture[str],
) -> None:
    steps: list[str] = []
    live = LiveText(lambda: steps.append("display hidden"))
    live.feed(JobInfo("j", "processing"))  # nothing decoded yet: nothing printed
    assert capsys.readouterr().out == "" and steps == []
    live.feed(JobInfo("j", "processing", partial_segments=_segments(" One.")))
    assert capsys.readouterr().out == "One." and steps == ["display hidden"]
    # a stream's pieces: the last segment grows, its line ends when the next one starts
    live.feed(JobInfo("j", "processing", partial_segments=_segments(" One. Two ")))
    live.feed(JobInfo("j", "processing", partial_segments=_segments(" One. Two three.", " Fo")))
    assert capsys.readouterr().out == " Two three.\nFo"
    final = Result(" One. Two three. Four.", _segments(" One. Two three.", " Four.", " Five."))
    live.finish(final)
    assert capsys.readouterr().out == "ur.\nFive.\n"
    assert steps == ["display hidden"]


@pytest.mark.parametrize(
    "final",
    [
        Result(" a b", _segments(" a", " b")),
        Result(" only text, no segments", []),
        Result("", []),
    ],
)
def test_live_text_of_a_whole_job_is_the_txt_format(
    final: Result, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fed the partial results of a job (or none), it prints exactly formats.to_txt."""
    live = LiveText()
    for n in range(len(final.segments)):
        live.feed(JobInfo("j", "processing", partial_segments=final.segments[:n]))
    live.finish(final)
    assert capsys.readouterr().out == formats.to_txt(final)


def test_live_text_of_a_result_with_speakers_keeps_their_labels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Eden AI's diarized result comes whole at the end: its lines carry [SPEAKER n]."""
    segments = _segments(" Hello.", " Hi there.", " Bye.")
    for segment, speaker in zip(segments, ["0", "1", "0"], strict=True):
        segment.extra["speaker"] = speaker
    final = Result(" Hello. Hi there. Bye.", segments)
    LiveText().finish(final)
    printed = capsys.readouterr().out
    assert printed == formats.to_txt(final)
    assert printed.splitlines()[1] == "[SPEAKER 1] Hi there."


def test_live_text_ends_a_line_left_open(capsys: pytest.CaptureFixture[str]) -> None:
    live = LiveText()
    live.close()  # nothing printed: nothing to end
    live.feed(JobInfo("j", "processing", partial_segments=_segments(" Half a sent")))
    live.close()  # the job failed mid-segment: the error starts on its own line
    assert capsys.readouterr().out == "Half a sent\n"
