"""Transcript writers matching openai-whisper's output formats (txt, srt, vtt, tsv, json).

Byte for byte as openai-whisper's ``utils.py`` writers (default options) write the same
segments: segment text is stripped (and in srt/vtt ``-->`` becomes ``->``); every cue ends
with a blank line, the last one too; segments with word timings make cues timed by their
first and last word; srt uses ``HH:MM:SS,mmm``; vtt starts with ``WEBVTT`` and uses
``MM:SS.mmm`` (hours when needed); tsv has the header ``start<TAB>end<TAB>text`` and integer
milliseconds; json is the result object. Output files are named after the input's stem:
``talk.mp3`` -> ``talk.srt``.

Segments may carry a ``speaker`` (Eden AI's diarization): when more than one speaker is heard,
txt/srt/vtt lines start with ``[SPEAKER n]`` and tsv gains a ``speaker`` column (json always
keeps the field).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from whispercli.fsutil import atomic_write_text
from whispercli.protocol import Result, Segment

FORMATS = ("txt", "srt", "vtt", "tsv", "json")
ALL = "all"
_MAX_LINE_WIDTH = 1000  # whisper's default when no --max_line_width is given


def format_timestamp(seconds: float, always_include_hours: bool, decimal_marker: str) -> str:
    milliseconds = round(max(seconds, 0.0) * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    secs, milliseconds = divmod(milliseconds, 1_000)
    hours_marker = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_marker}{minutes:02d}:{secs:02d}{decimal_marker}{milliseconds:03d}"


def _clean(segment: Segment) -> str:
    return segment.text.strip().replace("-->", "->")


def speakers(result: Result) -> list[str]:
    """The distinct speakers of the segments, in order of first word."""
    seen: dict[str, None] = {}
    for seg in result.segments:
        if seg.extra.get("speaker") is not None:
            seen.setdefault(str(seg.extra["speaker"]), None)
    return list(seen)


def _label(seg: Segment, several: bool) -> str:
    """``[SPEAKER n] `` before a segment's text when several speakers talk."""
    speaker = seg.extra.get("speaker")
    return f"[SPEAKER {speaker}] " if several and speaker is not None else ""


def to_txt(result: Result) -> str:
    several = len(speakers(result)) > 1
    return (
        "".join(f"{_label(s, several)}{s.text.strip()}\n" for s in result.segments)
        if result.segments
        else (result.text.strip() + "\n")
    )


def _cues(result: Result) -> Iterator[tuple[float, float, str]]:
    """(start, end, text) of each subtitle cue, as whisper's ``SubtitlesWriter`` makes them
    with its default options: from the word timings when the segments have them (a speaker
    label, when several talk, starts the cue)."""
    several = len(speakers(result)) > 1
    if result.segments and "words" in result.segments[0].extra:
        for seg in result.segments:
            words = seg.extra.get("words") or []
            text, line_len = "", 0
            for word in (str(w["word"]) for w in words):
                if line_len > 0 and line_len + len(word) <= _MAX_LINE_WIDTH:
                    line_len += len(word)  # the line goes on
                else:
                    word = word.strip()
                    line_len, word = len(word), ("\n" + word if line_len else word)
                text += word
            if words:
                yield float(words[0]["start"]), float(words[-1]["end"]), _label(seg, several) + text
    else:
        for seg in result.segments:
            yield seg.start, seg.end, _label(seg, several) + _clean(seg)


def to_srt(result: Result) -> str:
    return "".join(
        f"{index}\n{format_timestamp(start, True, ',')} --> "
        f"{format_timestamp(end, True, ',')}\n{text}\n\n"
        for index, (start, end, text) in enumerate(_cues(result), start=1)
    )


def to_vtt(result: Result) -> str:
    return "WEBVTT\n\n" + "".join(
        f"{format_timestamp(start, False, '.')} --> {format_timestamp(end, False, '.')}\n{text}\n\n"
        for start, end, text in _cues(result)
    )


def to_tsv(result: Result) -> str:
    several = len(speakers(result)) > 1
    lines = ["start\tend\tspeaker\ttext" if several else "start\tend\ttext"]
    for seg in result.segments:
        text = seg.text.strip().replace("\t", " ")
        who = f"{seg.extra.get('speaker', '')}\t" if several else ""
        lines.append(f"{round(1000 * seg.start)}\t{round(1000 * seg.end)}\t{who}{text}")
    return "\n".join(lines) + "\n"


def to_json(result: Result) -> str:
    return json.dumps(result.to_dict(), ensure_ascii=False)


_WRITERS = {"txt": to_txt, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv, "json": to_json}


def expand(formats: Iterable[str]) -> list[str]:
    """``["all"]`` -> every format; keeps order, drops duplicates, rejects unknown names."""
    out: list[str] = []
    for name in formats:
        names = FORMATS if name == ALL else (name,)
        for fmt in names:
            if fmt not in _WRITERS:
                raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)}, all)")
            if fmt not in out:
                out.append(fmt)
    return out


def render(result: Result, fmt: str) -> str:
    """The transcript in one format, as text."""
    return _WRITERS[fmt](result)


def output_paths(stem: str, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Where ``write`` puts each format for an input with this stem."""
    return [out_dir / f"{stem}.{fmt}" for fmt in expand(formats)]


def write(result: Result, stem: str, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Write the transcript in each format (atomically) and return the paths written."""
    written = []
    for path in output_paths(stem, out_dir, formats):
        atomic_write_text(path, render(result, path.suffix[1:]), mode=0o644)
        written.append(path)
    return written
