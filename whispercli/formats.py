"""Transcript writers matching openai-whisper's output formats (txt, srt, vtt, tsv, json).

Byte for byte as openai-whisper's ``utils.py`` writers write the same segments (tested against
them: tests/unit/test_formats_reference.py): segment text is stripped (and in srt/vtt ``-->``
becomes ``->``); every cue ends with a blank line, the last one too; segments with word
timings make cues timed by their first and last word; srt uses ``HH:MM:SS,mmm``; vtt starts
with ``WEBVTT`` and uses ``MM:SS.mmm`` (hours when needed); tsv has the header
``start<TAB>end<TAB>text`` and integer milliseconds; json is the result object. Output files
are named after the input's stem: ``talk.mp3`` -> ``talk.srt``.

:class:`SubtitleOptions` are openai-whisper's ``--max_line_width``, ``--max_line_count``,
``--max_words_per_line`` and ``--highlight_words``: they shape the srt and vtt cues of a result
with word timings (its other writers ignore them, and so do ours).

Segments may carry a ``speaker`` (Eden AI's diarization): when more than one speaker is heard,
txt/srt/vtt lines start with ``[SPEAKER n]`` (a change of speaker also starts a new cue) and
tsv gains a ``speaker`` column (json always keeps the field).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from whispercli.fsutil import atomic_write_text
from whispercli.protocol import Result, Segment

FORMATS = ("txt", "srt", "vtt", "tsv", "json")
SUBTITLE_FORMATS = ("srt", "vtt")
"""The formats :class:`SubtitleOptions` shape."""
ALL = "all"
_NO_LIMIT = 1000  # openai-whisper's line width and words per line when none is given
_LONG_PAUSE = 3.0  # seconds between words that start a new cue (with a line count)


@dataclass(frozen=True)
class SubtitleOptions:
    """How srt and vtt cues are cut from word timings: openai-whisper's writer options.

    ``max_line_width``: characters a line holds before it breaks. ``max_line_count``: lines a
    cue holds (with a width; cues then also break at pauses over 3 s and may span segments,
    otherwise every segment starts a cue). ``max_words_per_line``: words a cue holds (without a
    line count). ``highlight_words``: one cue per word spoken, the word underlined (``<u>``).
    None/False is openai-whisper's default; results without word timings are not shaped.
    """

    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_line: int | None = None
    highlight_words: bool = False

    @property
    def given(self) -> bool:
        """True when any option differs from the default (the cues then need word timings)."""
        return self != SubtitleOptions()


PLAIN = SubtitleOptions()


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


def has_words(result: Result) -> bool:
    """Whether the cues come from word timings. openai-whisper asks the first segment (its
    results have ``words`` in every segment or in none); the engine leaves out an empty list,
    so any segment with ``words`` counts."""
    return any("words" in seg.extra for seg in result.segments)


def to_txt(result: Result) -> str:
    several = len(speakers(result)) > 1
    return (
        "".join(f"{_label(s, several)}{s.text.strip()}\n" for s in result.segments)
        if result.segments
        else (result.text.strip() + "\n")
    )


@dataclass
class _Word:
    """One word timing of a cue (its text with the leading space or line break it gets)."""

    start: float
    end: float
    text: str
    label: str


def _words(result: Result, per_line: int) -> Iterator[tuple[_Word, bool]]:
    """Every word timing, and whether it starts a segment or a run of ``per_line`` words."""
    several = len(speakers(result)) > 1
    for seg in result.segments:
        timings = seg.extra.get("words") or []
        label = _label(seg, several)
        for index, raw in enumerate(timings):
            word = _Word(float(raw["start"]), float(raw["end"]), str(raw["word"]), label)
            yield word, index % per_line == 0


def _subtitles(result: Result, options: SubtitleOptions) -> Iterator[list[_Word]]:
    """The words of each cue, cut as openai-whisper's ``SubtitlesWriter.iterate_result``
    cuts them (its ``iterate_subtitles``, step for step; 0 counts as no limit there too)."""
    count = options.max_line_count or None
    preserve_segments = count is None or not options.max_line_width
    width = options.max_line_width or _NO_LIMIT
    timings = (w for seg in result.segments for w in seg.extra.get("words") or [])
    last = float(next(timings, {"start": 0.0})["start"])  # the previous word's start
    line_len, line_count = 0, 1
    subtitle: list[_Word] = []
    for word, run_start in _words(result, options.max_words_per_line or _NO_LIMIT):
        long_pause = not preserve_segments and word.start - last > _LONG_PAUSE
        has_room = line_len + len(word.text) <= width
        seg_break = bool(subtitle) and (
            (run_start and preserve_segments) or subtitle[-1].label != word.label
        )
        if line_len > 0 and has_room and not long_pause and not seg_break:
            line_len += len(word.text)  # the line goes on
        else:
            word.text = word.text.strip()
            if (subtitle and count is not None and (long_pause or line_count >= count)) or (
                seg_break
            ):
                yield subtitle  # a new cue
                subtitle, line_count = [], 1
            elif line_len > 0:
                line_count += 1  # a new line
                word.text = "\n" + word.text
            line_len = len(word.text.strip())
        subtitle.append(word)
        last = word.start
    if subtitle:
        yield subtitle


Stamp = Callable[[float], str]


def _cues(result: Result, options: SubtitleOptions, stamp: Stamp) -> Iterator[tuple[str, str, str]]:
    """(start, end, text) of each subtitle cue, as whisper's ``SubtitlesWriter`` makes them:
    from the word timings when the segments have them (a speaker label, when several talk,
    starts the cue)."""
    if not has_words(result):
        several = len(speakers(result)) > 1
        for seg in result.segments:
            yield stamp(seg.start), stamp(seg.end), _label(seg, several) + _clean(seg)
        return
    for subtitle in _subtitles(result, options):
        label = subtitle[0].label
        start, end = stamp(subtitle[0].start), stamp(subtitle[-1].end)
        text = label + "".join(w.text for w in subtitle)
        if options.highlight_words:
            yield from _highlighted(subtitle, start, text, stamp)
        else:
            yield start, end, text


def _highlighted(
    subtitle: list[_Word], first: str, text: str, stamp: Stamp
) -> Iterator[tuple[str, str, str]]:
    """One cue per word, that word underlined; a gap between words shows the plain cue."""
    label, last = subtitle[0].label, first
    for i, word in enumerate(subtitle):
        start, end = stamp(word.start), stamp(word.end)
        if last != start:
            yield last, start, text
        marked = (
            re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", w.text) if j == i else w.text
            for j, w in enumerate(subtitle)
        )
        yield start, end, label + "".join(marked)
        last = end


def to_srt(result: Result, options: SubtitleOptions = PLAIN) -> str:
    def stamp(seconds: float) -> str:
        return format_timestamp(seconds, True, ",")

    return "".join(
        f"{index}\n{start} --> {end}\n{text}\n\n"
        for index, (start, end, text) in enumerate(_cues(result, options, stamp), start=1)
    )


def to_vtt(result: Result, options: SubtitleOptions = PLAIN) -> str:
    def stamp(seconds: float) -> str:
        return format_timestamp(seconds, False, ".")

    return "WEBVTT\n\n" + "".join(
        f"{start} --> {end}\n{text}\n\n" for start, end, text in _cues(result, options, stamp)
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


_WRITERS: dict[str, Callable[[Result], str]] = {
    "txt": to_txt,
    "tsv": to_tsv,
    "json": to_json,
}
_SUBTITLE_WRITERS = {"srt": to_srt, "vtt": to_vtt}


def expand(formats: Iterable[str]) -> list[str]:
    """``["all"]`` -> every format; keeps order, drops duplicates, rejects unknown names."""
    out: list[str] = []
    for name in formats:
        names = FORMATS if name == ALL else (name,)
        for fmt in names:
            if fmt not in FORMATS:
                raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)}, all)")
            if fmt not in out:
                out.append(fmt)
    return out


def render(result: Result, fmt: str, subtitles: SubtitleOptions = PLAIN) -> str:
    """The transcript in one format, as text (``subtitles`` shape srt and vtt only)."""
    if fmt in _SUBTITLE_WRITERS:
        return _SUBTITLE_WRITERS[fmt](result, subtitles)
    return _WRITERS[fmt](result)


def output_paths(stem: str, out_dir: Path, formats: Iterable[str]) -> list[Path]:
    """Where ``write`` puts each format for an input with this stem."""
    return [out_dir / f"{stem}.{fmt}" for fmt in expand(formats)]


def write(
    result: Result,
    stem: str,
    out_dir: Path,
    formats: Iterable[str],
    subtitles: SubtitleOptions = PLAIN,
) -> list[Path]:
    """Write the transcript in each format (atomically) and return the paths written."""
    written = []
    for path in output_paths(stem, out_dir, formats):
        atomic_write_text(path, render(result, path.suffix[1:], subtitles), mode=0o644)
        written.append(path)
    return written
