"""Delivering finished jobs' results, the same way for ``transcribe`` and ``wait``
(``OutputOptions``: -f, -o).

- Without -o: one format on stdout (txt by default). Several txt transcripts each follow a
  ``==> NAME <==`` line, as ``head`` names several files; timed formats (srt, vtt, tsv, json)
  of several jobs would run together into one broken document, so they need -o.
- With -o DIR: ``<stem>.<format>`` files (all five formats unless -f), a folder's tree
  mirrored below DIR; two results that would write the same file are refused (exit 2), as is
  a DIR that cannot be created or written, all before anything is uploaded or waited for.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import whispercli.formats as formats
from whispercli.cli.options import first_subtitle_flag
from whispercli.cli.output import data
from whispercli.errors import UsageError
from whispercli.protocol import is_http_url

if TYPE_CHECKING:
    from whispercli.cli.options import OutputOptions
    from whispercli.formats import SubtitleOptions
    from whispercli.protocol import Result


@dataclass(frozen=True)
class Destination:
    """One result's place: ``label`` names it (headers, messages), ``stem`` and ``subdir``
    name its files under -o."""

    label: str
    stem: str
    subdir: Path = Path()


def display_name(source: str) -> str:
    """A file's name, a URL's last path piece decoded (``my%20talk.mp3`` -> ``my talk.mp3``)."""
    if is_http_url(source):
        return Path(unquote(urlsplit(source).path)).name or source
    return Path(source).name or source


def stem_of(source: str) -> str:
    """The stem output files are named after: a URL's is decoded (``caf%C3%A9.mp3`` ->
    ``café``), and a URL with no file name gives ``transcript``."""
    if is_http_url(source):
        return Path(unquote(urlsplit(source).path)).stem or "transcript"
    return Path(source).stem


def wait_command(job_ids: list[str], out: OutputOptions) -> str:
    """``whispercli wait IDS`` with the same -o and -f: what delivers those jobs as asked."""
    argv = ["whispercli", "wait", *job_ids]
    if out.output_dir is not None:
        argv += ["-o", str(out.output_dir)]
    for fmt in out.fmt or ():
        argv += ["-f", fmt]
    return shlex.join(argv)


def chosen_formats(out: OutputOptions, *, json_out: bool) -> list[str]:
    """The formats to write (all with -o, else txt), after the checks of what goes where."""
    chosen = formats.expand(out.fmt or ([formats.ALL] if out.output_dir else ["txt"]))
    if out.output_dir is None and len(chosen) > 1:
        raise UsageError("several formats need -o DIR to write them to")
    if json_out and out.fmt and out.output_dir is None:
        raise UsageError(
            "--json and -f both choose what goes to stdout",
            hint="drop -f (--json prints every result), or add -o DIR: -f then picks the "
            "files written and --json prints the summary",
        )
    return chosen


def check_destinations(
    out: OutputOptions, places: list[Destination], chosen: list[str], *, json_out: bool
) -> None:
    """Refuse, before any work, what could not be delivered: several timed documents on
    stdout, two results writing one file, an output directory that cannot be used."""
    if out.output_dir is None:
        if len(places) > 1 and chosen[0] != "txt" and not json_out:
            raise UsageError(
                f"{len(places)} results with -f {chosen[0]} need -o DIR "
                f"(one .{chosen[0]} file each)",
                hint="add -o DIR, or use --json for all the results in one JSON document",
            )
        return
    owners: dict[Path, Destination] = {}
    for place in places:
        for path in formats.output_paths(place.stem, out.output_dir / place.subdir, chosen):
            other = owners.setdefault(path, place)
            if other is not place:
                raise UsageError(
                    f"{other.label} and {place.label} would both write {path}",
                    hint="rename one, or run them separately with different -o",
                )
    _check_dir(out.output_dir)


def _check_dir(output_dir: Path) -> None:
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the output directory {output_dir}: {exc.strerror}"
        ) from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to the output directory {output_dir}")


def existing(out: OutputOptions, place: Destination, chosen: list[str]) -> bool:
    """Whether every file ``place`` would write under -o exists already."""
    if out.output_dir is None:
        return False
    paths = formats.output_paths(place.stem, out.output_dir / place.subdir, chosen)
    return all(p.exists() for p in paths)


def written(out: OutputOptions, chosen: list[str], *, json_out: bool) -> list[str]:
    """The formats that reach a reader: none on stdout with --json (it prints the results)."""
    return [] if json_out and out.output_dir is None else chosen


def check_word_timings(
    label: str, result: Result, subtitles: SubtitleOptions, shown: list[str]
) -> None:
    """A result without word timings cannot be cut as the subtitle options ask (a job
    submitted without ``--word-timestamps``, waited for with ``--max-line-width``): exit 2
    rather than cues of another shape."""
    if (
        subtitles.given
        and set(shown) & set(formats.SUBTITLE_FORMATS)
        and result.segments
        and not formats.has_words(result)
    ):
        raise UsageError(
            f"{label}: the job's result has no word timings, which "
            f"{first_subtitle_flag(subtitles)} needs",
            hint="submit it again with --word-timestamps (transcribe with a subtitle option "
            "asks for them)",
        )


def write(
    out: OutputOptions,
    place: Destination,
    result: Result,
    chosen: list[str],
    subtitles: SubtitleOptions,
) -> None:
    """The result's files under -o (nothing without -o: ``print_all`` prints it)."""
    if out.output_dir is not None:
        formats.write(result, place.stem, out.output_dir / place.subdir, chosen, subtitles)


def print_all(
    out: OutputOptions,
    done: list[tuple[Destination, Result | None]],
    chosen: list[str],
    subtitles: SubtitleOptions,
) -> None:
    """Without -o: each finished result on stdout in order, named when there are several."""
    if out.output_dir is not None:
        return
    printed = [(place, result) for place, result in done if result is not None]
    for n, (place, result) in enumerate(printed):
        if len(done) > 1:  # as head(1) names several files
            data(("\n" if n else "") + f"==> {place.label} <==")
        text = formats.render(result, chosen[0], subtitles)
        if text.strip():  # an empty transcript prints nothing (its warning says why)
            data(text)
