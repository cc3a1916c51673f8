"""`whispercli transcribe FILE|URL|DIR|- ...`: upload, submit, wait, print or write files.

Several inputs run as parallel jobs (a few worker threads) under one progress display;
transcripts print in input order once all are done. Everything that can be checked locally
(formats, output paths, the jobs file, stdin) is checked before the first upload."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

import whispercli.cli.results as results
from whispercli.cli import options as o
from whispercli.cli.bundles import expand
from whispercli.cli.context import get_client, parse_duration
from whispercli.cli.jobflow import (
    check_state_dir,
    report_failures,
    reuse_note,
    submit_source,
    wait_for,
)
from whispercli.cli.live import LiveText
from whispercli.cli.models_cmd import NoDownload, ensure_local_model
from whispercli.cli.output import emit_json, note, stderr_is_tty, warn
from whispercli.cli.progress import Display, Tracker
from whispercli.cli.results import Destination
from whispercli.errors import Interrupted, UsageError, WhisperCliError
from whispercli.protocol import DEFAULT_MODEL, is_http_url

if TYPE_CHECKING:
    from whispercli.formats import SubtitleOptions
    from whispercli.protocol import Result

MEDIA_SUFFIXES = frozenset(
    [
        ".mp3",
        ".wav",
        ".m4a",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".webm",
        ".mp4",
        ".mkv",
        ".mov",
        ".aac",
        ".wma",
        ".aiff",
        ".aif",
    ]
)
PARALLEL_JOBS = 8
"""Jobs in flight at once by default: what the embedded server's engine takes at once
(``server run --engine-jobs``), so a directory of short files keeps its replicas busy (19 clips:
2.27 s at 8 against 2.36 s at 4, bench/RESULTS.md)."""


@dataclass
class Item:
    source: str
    """What the user gave (a path, a URL, or '-')."""
    path: str
    """What to upload: the path, the URL, or a temporary copy of stdin."""
    place: Destination
    """Its name in messages and its files under -o."""
    result: Result | None = None
    job_id: str | None = None
    skipped: bool = False
    reused: bool = False
    failure: WhisperCliError | None = None
    printed: bool = False
    """Its transcript is on stdout already (shown as it was decoded: cli/live.py)."""


def _read_stdin(tmp: Path) -> Path:
    """stdin copied to a file; a terminal (nothing piped) or an empty pipe is refused."""
    if sys.stdin.isatty():
        raise UsageError(
            "stdin is a terminal; pipe audio in",
            hint="e.g. `curl -s URL | whispercli transcribe -`, or give a file name",
        )
    copy = tmp / "stdin"
    with copy.open("wb") as fh:
        shutil.copyfileobj(sys.stdin.buffer, fh)
    if copy.stat().st_size == 0:
        raise UsageError("stdin was empty: no audio to transcribe")
    return copy


def _media_in(folder: Path) -> list[Path]:
    """The audio and video files under ``folder``, without hidden files and folders."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in MEDIA_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _expand(sources: list[str], tmp: Path) -> list[Item]:
    """Inputs as items. A folder's tree is mirrored under -o; with several inputs each
    folder goes under its own name (``d1 d2 -o out`` -> ``out/d1/...``, ``out/d2/...``)."""
    items: list[Item] = []
    for source in sources:
        if source == "-":
            items.append(Item(source, str(_read_stdin(tmp)), Destination(source, "stdin")))
        elif is_http_url(source):
            items.append(Item(source, source, Destination(source, results.stem_of(source))))
        elif Path(source).is_dir():
            folder = Path(source)
            found = _media_in(folder)
            if not found:
                raise UsageError(f"no audio or video files in {source}")
            top = Path(folder.resolve().name) if len(sources) > 1 else Path()
            items.extend(
                Item(
                    str(p), str(p), Destination(str(p), p.stem, top / p.parent.relative_to(folder))
                )
                for p in found
            )
        else:
            items.append(Item(source, source, Destination(source, Path(source).stem)))
    return items


@expand
def transcribe(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE|URL|DIR|-",
            help="Audio/video files, URLs, directories, or - for stdin.",
        ),
    ],
    *,
    out: o.OutputOptions,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="With -o: skip inputs whose outputs exist.")
    ] = False,
    job: o.JobOptions,
    timeout: o.Timeout = None,
    parallel: Annotated[
        int,
        typer.Option(
            "-j", "--parallel", metavar="N", min=1, max=16, help="Jobs in flight at once."
        ),
    ] = PARALLEL_JOBS,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    no_download: NoDownload = False,
) -> None:
    """Transcribe audio: upload, submit, wait, then print the transcript or write files."""
    if skip_existing and out.output_dir is None:
        raise UsageError("--skip-existing needs -o DIR")
    if sources.count("-") > 1:
        raise UsageError("- (stdin) can be given once")
    chosen = results.chosen_formats(out, json_out=json_out)
    shown = results.written(out, chosen, json_out=json_out)
    subtitles = out.subtitles(job.word_timestamps, shown)
    if subtitles.given:  # subtitles are cut at word timings
        job = dataclasses.replace(job, word_timestamps=True)
    client = get_client(ctx)
    model, tier = job.model_and_tier(client.settings)
    ensure_local_model(client, model or DEFAULT_MODEL, no_download=no_download, quiet=quiet)
    seconds = parse_duration(timeout) if timeout else None
    display_on = stderr_is_tty() and not quiet
    items: list[Item] = []

    def run(item: Item, tracker: Tracker, live: LiveText | None = None) -> None:
        if skip_existing and results.existing(out, item.place, chosen):
            item.skipped = True
            tracker.message("skipped (outputs exist)", done=True)
            return
        feed = live.feed if live else None

        def submitted(job_id: str) -> None:
            item.job_id = job_id  # before it is saved: a Ctrl-C then counts it as running

        done = submit_source(
            ctx, item.path, model=model, tier=tier, job=job, tracker=tracker, on_progress=feed,
            on_submitted=submitted,
        )  # fmt: skip
        item.job_id, item.reused = done.job.id, done.reused
        if done.reused and len(items) == 1 and not display_on:
            reuse_note(item.source, done.job.id, quiet=quiet)
        item.result = wait_for(
            ctx, done.job, timeout=seconds, tracker=tracker, display=display_on, on_progress=feed
        )
        results.check_word_timings(item.source, item.result, subtitles, shown)
        if live is not None:
            live.finish(item.result)
            item.printed = True
        results.write(out, item.place, item.result, chosen, subtitles)

    with tempfile.TemporaryDirectory(prefix="whispercli-") as tmp:
        items = _expand(sources, Path(tmp))
        results.check_destinations(out, [i.place for i in items], chosen, json_out=json_out)
        check_state_dir()
        try:
            with Display(enabled=display_on) as display:
                trackers = [display.track(results.display_name(i.source)) for i in items]
                if len(items) == 1:
                    with _live_text(display, chosen, out, json_out) as live:
                        run(items[0], trackers[0], live)
                else:
                    _run_parallel(items, trackers, run, min(parallel, len(items)))
        except KeyboardInterrupt:
            running = [i.job_id for i in items if i.job_id and not i.result]
            if not client.backend.has_jobs:
                note(f"{client.backend.label}'s API keeps no job: the work in progress is lost")
            raise Interrupted(running, _resume_command(sources, out, running)) from None
    _report(items, out, chosen, subtitles, json_out=json_out, quiet=quiet)


def _resume_command(sources: list[str], out: o.OutputOptions, running: list[str]) -> str | None:
    """With -o, what finishes the run as asked: the same command with --skip-existing (it
    reuses the running jobs and skips the files written), or, for stdin (which cannot be
    read again), `wait` of the jobs into the same folder. Without -o, `wait` (the default)."""
    if out.output_dir is None or not running:
        return None
    if "-" in sources:
        return results.wait_command(running, out)
    argv = [a for a in sys.argv[1:] if a != "--force"]
    if "--skip-existing" not in argv:
        argv.append("--skip-existing")
    return shlex.join(["whispercli", *argv])


@contextlib.contextmanager
def _live_text(
    display: Display, chosen: list[str], out: o.OutputOptions, json_out: bool
) -> Iterator[LiveText | None]:
    """On a terminal, one transcript printed to stdout (txt) shows as it is decoded (the
    progress display steps aside for it); piped, it prints once at the end, as always."""
    wanted = out.output_dir is None and not json_out and chosen == ["txt"]
    if not (wanted and sys.stdout.isatty()):
        yield None
        return
    live = LiveText(display.hide)
    try:
        yield live
    finally:
        live.close()


def _run_parallel(
    items: list[Item],
    trackers: list[Tracker],
    run: Callable[[Item, Tracker], None],
    workers: int,
) -> None:
    """Daemon worker threads (so Ctrl-C is not held up by a long-poll in flight)."""
    lock = threading.Lock()
    queue = list(zip(items, trackers, strict=True))

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                item, tracker = queue.pop(0)
            try:
                run(item, tracker)
            except WhisperCliError as exc:
                item.failure = exc
                tracker.message("failed", done=True)
            except Exception as exc:  # keep the other jobs going; report at the end
                item.failure = WhisperCliError(f"unexpected {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)


def _report(
    items: list[Item],
    out: o.OutputOptions,
    chosen: list[str],
    subtitles: SubtitleOptions,
    *,
    json_out: bool,
    quiet: bool,
) -> None:
    if json_out:
        emit_json(
            [
                {
                    "input": i.source,
                    "id": i.job_id,
                    "skipped": i.skipped,
                    "reused": i.reused,
                    "error": i.failure.message if i.failure else None,
                    "result": i.result.to_dict() if i.result else None,
                }
                for i in items
            ]
        )
    else:
        done = [(i.place, None if i.printed else i.result) for i in items]
        results.print_all(out, done, chosen, subtitles)
    _summarise(items, out, quiet)
    for item in items:
        warn(item.source, item.result)
    report_failures([(i.source, i.job_id, i.failure) for i in items if i.failure is not None])


def _summarise(items: list[Item], out: o.OutputOptions, quiet: bool) -> None:
    """What was not transcribed anew: one line for a single input (named as given), one
    line in all for several."""
    skipped = [i for i in items if i.skipped]
    reused = [i for i in items if i.reused]
    if len(items) == 1:
        if skipped:
            note(f"{items[0].source}: skipped, its outputs exist in {out.output_dir}", quiet=quiet)
        return
    if skipped:
        note(
            f"skipped {len(skipped)} of {len(items)} inputs: their outputs exist in "
            f"{out.output_dir}",
            quiet=quiet,
        )
    if reused:
        note(
            f"reused {len(reused)} earlier job(s) for the same files and options "
            "(--force submits again)",
            quiet=quiet,
        )
