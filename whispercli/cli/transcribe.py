"""`whispercli transcribe FILE|URL|DIR|- ...`: upload, submit, wait, print or write files.

Several inputs run as parallel jobs (a few worker threads) under one progress display;
transcripts print in input order once all are done. Everything that can be checked locally
(formats, output paths, the jobs file) is checked before the first upload."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

import whispercli.formats as formats
from whispercli.cli import options as o
from whispercli.cli.context import get_client, parse_duration
from whispercli.cli.jobflow import check_state_dir, report_failures, submit_source, wait_for
from whispercli.cli.live import LiveText
from whispercli.cli.models_cmd import NoDownload, ensure_local_model
from whispercli.cli.output import data, emit_json, note, stderr_is_tty, warn
from whispercli.cli.progress import Display, Tracker
from whispercli.errors import Interrupted, UsageError, WhisperCliError
from whispercli.protocol import is_http_url

if TYPE_CHECKING:
    from whispercli.client import Client
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
MAX_WORKERS = 4


@dataclass
class Item:
    source: str
    """What the user gave (a path, a URL, or '-')."""
    path: str
    """What to upload: the path, the URL, or a temporary copy of stdin."""
    stem: str
    subdir: Path = Path()
    """Where its files go under -o: its folder relative to the directory given."""
    result: Result | None = None
    job_id: str | None = None
    skipped: bool = False
    failure: WhisperCliError | None = None
    printed: bool = False
    """Its transcript is on stdout already (shown as it was decoded: cli/live.py)."""


def _expand(sources: list[str], tmp: Path) -> list[Item]:
    items: list[Item] = []
    for source in sources:
        if source == "-":
            copy = tmp / "stdin"
            with copy.open("wb") as fh:
                shutil.copyfileobj(sys.stdin.buffer, fh)
            items.append(Item(source, str(copy), "stdin"))
        elif is_http_url(source):
            stem = Path(source.split("?", 1)[0]).stem or "transcript"
            items.append(Item(source, source, stem))
        elif Path(source).is_dir():
            found = sorted(
                p
                for p in Path(source).rglob("*")
                if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES
            )
            if not found:
                raise UsageError(f"no audio or video files in {source}")
            items.extend(Item(str(p), str(p), p.stem, p.parent.relative_to(source)) for p in found)
        else:
            items.append(Item(source, source, Path(source).stem))
    return items


def _check_stdout(items: list[Item], fmt: str) -> None:
    """Several transcripts on stdout: txt gets a header per file; timed formats would run
    together (two SRTs back to back are not one valid SRT), so they need -o."""
    if len(items) > 1 and fmt != "txt":
        raise UsageError(
            f"{len(items)} inputs with -f {fmt} need -o DIR (one .{fmt} file per input)",
            hint="add -o DIR, or use --json for all the results in one JSON document",
        )


def _check_outputs(items: list[Item], output_dir: Path, chosen: list[str]) -> None:
    """No two inputs may write the same file; the output directory must be writable."""
    owners: dict[Path, Item] = {}
    for item in items:
        for path in formats.output_paths(item.stem, output_dir / item.subdir, chosen):
            other = owners.setdefault(path, item)
            if other is not item:
                raise UsageError(
                    f"{other.source} and {item.source} would both write {path}",
                    hint="rename one, or transcribe them in separate runs with different -o",
                )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create the output directory {output_dir}: {exc.strerror}"
        ) from None
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write to the output directory {output_dir}")


def transcribe(
    ctx: typer.Context,
    sources: Annotated[
        list[str],
        typer.Argument(
            metavar="FILE|URL|DIR|-",
            help="Audio/video files, URLs, directories, or - for stdin.",
        ),
    ],
    fmt: Annotated[
        list[str] | None,
        o.choice("-f", "--format", choices=o.FORMAT_CHOICES, help="Output format (repeatable)."),
    ] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output-dir",
            metavar="DIR",
            help="Write <stem>.<format> files here.",
            file_okay=False,
        ),
    ] = None,
    skip_existing: Annotated[
        bool, typer.Option("--skip-existing", help="With -o: skip inputs whose outputs exist.")
    ] = False,
    model: o.Model = None,
    tier: o.Tier = None,
    language: o.Language = None,
    task: o.Task = None,
    beam_size: o.BeamSize = None,
    best_of: o.BestOf = None,
    temperature: o.Temperature = None,
    patience: o.Patience = None,
    initial_prompt: o.InitialPrompt = None,
    hotwords: o.Hotwords = None,
    condition_on_previous_text: o.ConditionOnPrevious = None,
    word_timestamps: o.WordTimestamps = None,
    vad_filter: o.VadFilter = None,
    speed: o.Speed = None,
    max_width: o.MaxLineWidth = None,
    max_lines: o.MaxLineCount = None,
    max_words: o.MaxWordsPerLine = None,
    highlight: o.HighlightWords = False,
    provider: o.Providers = None,
    webhook: o.Webhook = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout", metavar="DURATION", help="Give up waiting after this long; exit 7."
        ),
    ] = None,
    parallel: Annotated[
        int,
        typer.Option(
            "-j", "--parallel", metavar="N", min=1, max=16, help="Jobs in flight at once."
        ),
    ] = MAX_WORKERS,
    force: o.Force = False,
    json_out: o.Json = False,
    quiet: o.Quiet = False,
    no_download: NoDownload = False,
) -> None:
    """Transcribe audio: upload, submit, wait, then print the transcript or write files."""
    chosen = _chosen_formats(sources, fmt, output_dir, skip_existing, json_out)
    written = [] if json_out and output_dir is None else chosen
    subtitles = o.subtitle_options(
        max_width, max_lines, max_words, highlight, word_timestamps, written
    )
    params = o.whisper_params(
        language,
        task,
        beam_size,
        best_of,
        temperature,
        patience,
        initial_prompt,
        condition_on_previous_text,
        True if subtitles.given else word_timestamps,  # subtitles are cut at word timings
        vad_filter,
        speed,
        hotwords,
    )
    client = get_client(ctx)
    model_name, tier_name = o.model_and_tier(
        client.settings.model, client.settings.tier, model, tier
    )
    ensure_local_model(client, model_name, no_download=no_download, quiet=quiet)
    seconds = parse_duration(timeout) if timeout else None
    display_on = stderr_is_tty() and not quiet

    def run(item: Item, tracker: Tracker, live: LiveText | None = None) -> None:
        out = None if output_dir is None else output_dir / item.subdir
        if skip_existing and _outputs_exist(item, out, chosen, tracker, quiet):
            return
        done = submit_source(
            ctx,
            item.path,
            model=model_name,
            tier=tier_name,
            params=params,
            force=force,
            tracker=tracker,
            quiet=quiet or display_on,
            providers=o.providers_of(provider),
            webhook=webhook,
            on_progress=live.feed if live else None,
        )
        item.job_id = done.job.id
        item.result = wait_for(
            ctx,
            done.job,
            timeout=seconds,
            tracker=tracker,
            display=display_on,
            on_progress=live.feed if live else None,
        )
        _deliver(item, item.result, live, out, chosen, subtitles, written)

    with tempfile.TemporaryDirectory(prefix="whispercli-") as tmp:
        items = _expand(sources, Path(tmp))
        if output_dir is None and not json_out:
            _check_stdout(items, chosen[0])
        check_state_dir()
        if output_dir is not None:
            _check_outputs(items, output_dir, chosen)
        try:
            with Display(enabled=display_on) as display:
                trackers = [display.track(Path(i.source).name or i.source) for i in items]
                if len(items) == 1:
                    with _live_text(display, chosen, output_dir, json_out) as live:
                        run(items[0], trackers[0], live)
                else:
                    _run_parallel(items, trackers, run, min(parallel, len(items)))
        except KeyboardInterrupt:
            raise _interrupted(client, items) from None
    _report(items, chosen[0], output_dir, json_out, subtitles)


def _outputs_exist(
    item: Item, out: Path | None, chosen: list[str], tracker: Tracker, quiet: bool
) -> bool:
    """--skip-existing: whether the input's outputs are all in ``out`` (then it is skipped)."""
    if out is None or not all(p.exists() for p in formats.output_paths(item.stem, out, chosen)):
        return False
    item.skipped = True
    tracker.message("skipped (outputs exist)", done=True)
    note(f"{item.source}: skipped, its outputs exist in {out}", quiet=quiet)
    return True


def _deliver(
    item: Item,
    result: Result,
    live: LiveText | None,
    out: Path | None,
    chosen: list[str],
    subtitles: formats.SubtitleOptions,
    written: list[str],
) -> None:
    """A finished transcript: the rest of the live text on the terminal, the files of -o."""
    o.check_word_timings(item.source, result, subtitles, written)
    if live is not None:
        live.finish(result)
        item.printed = True
    if out is not None:
        formats.write(result, item.stem, out, chosen, subtitles)


@contextlib.contextmanager
def _live_text(
    display: Display, chosen: list[str], output_dir: Path | None, json_out: bool
) -> Iterator[LiveText | None]:
    """On a terminal, one transcript printed to stdout (txt) shows as it is decoded (the
    progress display steps aside for it); piped, it prints once at the end, as always."""
    wanted = output_dir is None and not json_out and chosen == ["txt"]
    if not (wanted and sys.stdout.isatty()):
        yield None
        return
    live = LiveText(display.hide)
    try:
        yield live
    finally:
        live.close()


def _interrupted(client: Client, items: list[Item]) -> Interrupted:
    """Ctrl-C: the jobs left running; a protocol without jobs (OpenAI's) says the work is lost."""
    if not client.backend.has_jobs:
        note(f"{client.backend.label}'s API keeps no job: the work in progress is lost")
    return Interrupted([i.job_id for i in items if i.job_id and not i.result])


def _chosen_formats(
    sources: list[str],
    fmt: list[str] | None,
    output_dir: Path | None,
    skip_existing: bool,
    json_out: bool,
) -> list[str]:
    """The formats to write (all with -o, else txt), after the checks of what goes where."""
    chosen = formats.expand(fmt or ([formats.ALL] if output_dir else ["txt"]))
    if output_dir is None and len(chosen) > 1:
        raise UsageError("several formats need -o DIR to write them to")
    if skip_existing and output_dir is None:
        raise UsageError("--skip-existing needs -o DIR")
    if sources.count("-") > 1:
        raise UsageError("- (stdin) can be given once")
    if json_out and fmt and output_dir is None:
        raise UsageError(
            "--json and -f both choose what goes to stdout",
            hint="drop -f (--json prints every result), or add -o DIR: -f then picks the "
            "files written and --json prints the summary",
        )
    return chosen


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
    fmt: str,
    output_dir: Path | None,
    json_out: bool,
    subtitles: formats.SubtitleOptions,
) -> None:
    if json_out:
        emit_json(
            [
                {
                    "input": i.source,
                    "id": i.job_id,
                    "skipped": i.skipped,
                    "error": i.failure.message if i.failure else None,
                    "result": i.result.to_dict() if i.result else None,
                }
                for i in items
            ]
        )
    elif output_dir is None:
        printed = [i for i in items if i.result is not None and not i.printed]
        for n, item in enumerate(printed):
            assert item.result is not None
            if len(items) > 1:  # as head(1) names several files
                data(("\n" if n else "") + f"==> {item.source} <==")
            data(formats.render(item.result, fmt, subtitles))
    for item in items:
        warn(item.source, item.result)
    report_failures([(i.source, i.job_id, i.failure) for i in items if i.failure is not None])
