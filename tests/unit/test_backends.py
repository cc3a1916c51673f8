"""The backends' pure mappings: Eden AI vendor answers -> Result (segments, speakers, errors),
OctoAI responses, the registry, and speaker labels in the writers."""

from __future__ import annotations

from typing import Any

import pytest

import whispercli.backends as backends
import whispercli.formats as formats
from whispercli.backends.edenai import pick_provider, segments_of, vendor_result
from whispercli.backends.octoai import result_of
from whispercli.errors import UsageError
from whispercli.protocol import Result, Segment


def _entry(word: str, start: float, end: float, speaker: Any = 1) -> dict[str, Any]:
    return {"segment": word, "start_time": str(start), "end_time": f"{end}", "speaker": speaker}


def test_segments_split_at_sentence_ends_pauses_and_speaker_changes() -> None:
    entries = [
        _entry("One", 0.0, 0.5),
        _entry("two.", 0.6, 1.2),  # a sentence end past 1 s closes it
        _entry("Three", 1.3, 1.6),
        _entry("four", 3.0, 3.4),  # a 1.4 s pause before it
        _entry("five", 3.5, 3.8, speaker=2),  # another speaker
        {"segment": "untimed", "speaker": 2},  # no times: left out of the segments
        "not an entry",
    ]
    segments = segments_of(entries)
    assert [(s.text.strip(), s.start, s.end, s.extra["speaker"]) for s in segments] == [
        ("One two.", 0.0, 1.2, 1),
        ("Three", 1.3, 1.6, 1),
        ("four", 3.0, 3.4, 1),
        ("five", 3.5, 3.8, 2),
    ]
    assert [s.id for s in segments] == [0, 1, 2, 3]
    assert segments[0].extra["words"][1] == {
        "word": " two.",
        "start": 0.6,
        "end": 1.2,
        "probability": None,
    }


def test_vendor_result_reads_the_misspelled_success_and_failures() -> None:
    ok = vendor_result(
        {
            "text": "One two.",
            "final_status": "sucess",
            "diarization": {"total_speakers": 1, "entries": [_entry("One", 0, 0.4)]},
        }
    )
    assert ok["error"] is None and ok["speakers"] == 1 and ok["segments"][0]["speaker"] == 1
    failed = vendor_result(
        {"text": "", "final_status": "fail", "error": {"type": "ProviderError", "message": "x"}}
    )
    assert failed["error"] == "x" and failed["segments"] == []
    assert vendor_result(None)["error"] == "no answer"


def test_pick_provider() -> None:
    combined = Result("a", [], extra={"results": {"a": {"text": "a"}, "b": {"error": "down"}}})
    assert pick_provider(combined, "a").text == "a"
    with pytest.raises(UsageError, match="did not run on 'c'"):
        pick_provider(combined, "c")
    with pytest.raises(UsageError, match="b failed on this job: down"):
        pick_provider(combined, "b")


def test_octoai_result_falls_back_to_transcription() -> None:
    assert result_of({"response": {"segments": []}, "transcription": "hi"}).text == "hi"
    body = {
        "response": {"text": " hi", "segments": [{"id": 0, "start": 0, "end": 1, "text": " hi"}]}
    }
    assert result_of(body).segments[0].end == 1.0


def test_registry_refuses_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="tiyaro, edenai, octoai"):
        backends.create("whisperx", None)  # type: ignore[arg-type]


def test_one_speaker_gets_no_labels_and_several_do() -> None:
    one = Result(
        "", [Segment(0, 0, 1, " hi", {"speaker": 1}), Segment(1, 1, 2, " yo", {"speaker": 1})]
    )
    assert formats.render(one, "txt") == "hi\nyo\n"
    assert formats.render(one, "tsv").splitlines()[0] == "start\tend\ttext"
    two = Result(
        "", [Segment(0, 0, 1, " hi", {"speaker": 1}), Segment(1, 1, 2, " yo", {"speaker": "B"})]
    )
    assert formats.render(two, "txt") == "[SPEAKER 1] hi\n[SPEAKER B] yo\n"
    assert formats.render(two, "tsv").splitlines()[1:] == ["0\t1000\t1\thi", "1000\t2000\tB\tyo"]
    assert "00:01.000 --> 00:02.000\n[SPEAKER B] yo" in formats.render(two, "vtt")
