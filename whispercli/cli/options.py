"""Options several commands share, each declared once.

Two bundles (``cli/bundles.py``: a frozen dataclass of ``Annotated`` Typer options that a
command takes as one parameter, wrapped with ``bundles.expand``):

- ``JobOptions`` -- what ``submit`` and ``transcribe`` send with a job (model, tier, the
  Whisper parameters, Eden AI's vendors, webhook, --force);
- ``OutputOptions`` -- how ``transcribe`` and ``wait`` deliver results (-f, -o, and the
  subtitle options that shape srt and vtt).

To add an option to every command of a bundle, add one field to its dataclass: the name is
the keyword the command receives, the ``Annotated`` type carries the ``typer.Option``, the
default is the option's default. Read it in the command as ``job.<field>`` /
``out.<field>``; an option that changes what is written is read where results are
rendered (``cli/results.py``), so both commands honour it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import whispercli.formats as formats
from whispercli.cli.context import check_duration
from whispercli.errors import UsageError
from whispercli.protocol import DEFAULT_TIER, SPEEDS, TASKS, TIERS, WHISPER_PARAMS

if TYPE_CHECKING:
    from whispercli.config import Settings

_W = "Whisper options"
_S = "Subtitle options (srt, vtt)"


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], Any]:
    """A callback that refuses values outside ``choices`` (a click usage error, exit 2)."""

    def check(value: Any) -> Any:
        for item in value if isinstance(value, list) else [value]:
            if item is not None and item not in choices:
                raise typer.BadParameter(f"{item!r} is not one of {', '.join(choices)}")
        return value

    return check


def choice(*decls: str, choices: tuple[str, ...], help: str, **kwargs: Any) -> Any:
    """An option whose values are ``choices``: shown as ``[a|b]``, checked, completed."""
    return typer.Option(
        *decls,
        metavar=f"[{'|'.join(choices)}]",
        callback=_one_of(choices),
        autocompletion=lambda: list(choices),
        help=help,
        **kwargs,
    )


FORMAT_CHOICES = (*formats.FORMATS, formats.ALL)

Timeout = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="DURATION",
        callback=check_duration,
        help="Give up waiting after this long (90, 90s, 30m, 1h); exit 7.",
    ),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print only the essential data.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


@dataclass(frozen=True)
class JobOptions:
    """What a submitted job carries (``submit``, ``transcribe``)."""

    model: Annotated[
        str | None,
        typer.Option(
            "-m",
            "--model",
            metavar="MODEL",
            help="Model name [tiny]; `whispercli models list` lists the models.",
        ),
    ] = None
    tier: Annotated[
        str | None, choice("--tier", choices=TIERS, help=f"Service tier [{DEFAULT_TIER}].")
    ] = None
    language: Annotated[
        str | None,
        typer.Option(
            "-l",
            "--language",
            metavar="LANG",
            help="Spoken language (e.g. en); detected when omitted.",
        ),
    ] = None
    task: Annotated[
        str | None,
        choice("--task", choices=TASKS, help="translate: to English.", rich_help_panel=_W),
    ] = None
    beam_size: Annotated[
        int | None, typer.Option("--beam-size", metavar="N", min=1, rich_help_panel=_W)
    ] = None
    best_of: Annotated[
        int | None, typer.Option("--best-of", metavar="N", min=1, rich_help_panel=_W)
    ] = None
    temperature: Annotated[
        float | None, typer.Option("--temperature", metavar="T", min=0, rich_help_panel=_W)
    ] = None
    patience: Annotated[
        float | None, typer.Option("--patience", metavar="P", min=0, rich_help_panel=_W)
    ] = None
    initial_prompt: Annotated[
        str | None, typer.Option("--initial-prompt", metavar="TEXT", rich_help_panel=_W)
    ] = None
    hotwords: Annotated[
        str | None,
        typer.Option(
            "--hotwords",
            metavar="TEXT",
            help="Names and jargon to expect (faster-whisper's hotwords), e.g. "
            "'Siobhan, Kubernetes'.",
            rich_help_panel=_W,
        ),
    ] = None
    condition_on_previous_text: Annotated[
        bool | None,
        typer.Option(
            "--condition-on-previous-text/--no-condition-on-previous-text", rich_help_panel=_W
        ),
    ] = None
    word_timestamps: Annotated[
        bool | None, typer.Option("--word-timestamps/--no-word-timestamps", rich_help_panel=_W)
    ] = None
    vad_filter: Annotated[
        bool | None, typer.Option("--vad-filter/--no-vad-filter", rich_help_panel=_W)
    ] = None
    speed: Annotated[
        str | None,
        choice(
            "--speed",
            choices=SPEEDS,
            help="Decoding speed on the embedded server.",
            rich_help_panel=_W,
        ),
    ] = None
    provider: Annotated[
        list[str] | None,
        typer.Option(
            "--provider",
            metavar="NAME[,NAME]",
            help="Eden AI: the vendors to run (repeatable; the profile's providers by default). "
            "Text output takes the first.",
        ),
    ] = None
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            help="POST the job to URL when it ends (signed: `whispercli server webhook-secret`).",
        ),
    ] = None
    force: Annotated[
        bool,
        typer.Option("--force", help="Submit again even if the same file and options already ran."),
    ] = False

    def whisper_params(self) -> dict[str, Any]:
        """The Whisper input parameters given on the command line (unset ones left out)."""
        params = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return {k: v for k, v in params.items() if k in WHISPER_PARAMS and v is not None}

    def model_and_tier(self, settings: Settings) -> tuple[str | None, str]:
        """The model and tier asked for, else the profile's (the tier defaults to cpuflex)."""
        return self.model or settings.model, self.tier or settings.tier or DEFAULT_TIER

    def providers(self) -> list[str]:
        """``--provider a,b --provider c`` -> ``["a", "b", "c"]``."""
        from whispercli.config import split_providers

        return [name for item in self.provider or [] for name in split_providers(item)]


@dataclass(frozen=True)
class OutputOptions:
    """Where results go and in which formats (``transcribe``, ``wait``): see
    ``cli/results.py`` for the rules."""

    fmt: Annotated[
        list[str] | None,
        choice("-f", "--format", choices=FORMAT_CHOICES, help="Output format (repeatable)."),
    ] = None
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output-dir",
            metavar="DIR",
            help="Write <stem>.<format> files here (all formats unless -f).",
            file_okay=False,
        ),
    ] = None
    max_line_width: Annotated[
        int | None,
        typer.Option(
            "--max-line-width",
            metavar="N",
            min=1,
            help="Break subtitle lines at N characters.",
            rich_help_panel=_S,
        ),
    ] = None
    max_line_count: Annotated[
        int | None,
        typer.Option(
            "--max-line-count",
            metavar="N",
            min=1,
            help="At most N lines a cue (with --max-line-width): cues then run across segments "
            "and break at pauses over 3 s.",
            rich_help_panel=_S,
        ),
    ] = None
    max_words_per_line: Annotated[
        int | None,
        typer.Option(
            "--max-words-per-line",
            metavar="N",
            min=1,
            help="At most N words a cue (not with --max-line-count).",
            rich_help_panel=_S,
        ),
    ] = None
    highlight_words: Annotated[
        bool,
        typer.Option(
            "--highlight-words",
            help="A cue per word spoken, that word underlined.",
            rich_help_panel=_S,
        ),
    ] = False

    def subtitles(
        self, word_timestamps: bool | None, written: Sequence[str]
    ) -> formats.SubtitleOptions:
        """The subtitle options given, once checked against each other, against
        ``--word-timestamps`` (None: not given) and against the formats ``written``: exit 2
        when one would do nothing. When any is given, the job must have word timings: the
        caller asks for them (``word_timestamps=True``)."""
        chosen = formats.SubtitleOptions(
            self.max_line_width, self.max_line_count, self.max_words_per_line, self.highlight_words
        )
        if chosen.given:
            _check_subtitles(chosen, word_timestamps, written)
        return chosen


def _check_subtitles(
    chosen: formats.SubtitleOptions, word_timestamps: bool | None, written: Sequence[str]
) -> None:
    if chosen.max_line_count is not None and chosen.max_line_width is None:
        raise UsageError(
            "--max-line-count needs --max-line-width (the lines it counts are that wide)",
            hint="add --max-line-width N (42 is common), or drop --max-line-count",
        )
    if chosen.max_line_count is not None and chosen.max_words_per_line is not None:
        raise UsageError(
            "--max-words-per-line does nothing with --max-line-count (openai-whisper's cues "
            "then follow the line width and count only)",
            hint="cut cues by lines (--max-line-width N --max-line-count N) or by words "
            "(--max-words-per-line N, with or without --max-line-width)",
        )
    flag = first_subtitle_flag(chosen)
    if word_timestamps is False:
        raise UsageError(
            f"{flag} cuts cues at word timings, which --no-word-timestamps turns off",
            hint="drop --no-word-timestamps (the subtitle options ask for word timings)",
        )
    if not set(written) & set(formats.SUBTITLE_FORMATS):
        raise UsageError(
            f"{flag} shapes srt and vtt subtitles, and none is written",
            hint="add -f srt or -f vtt (or -o DIR, which writes every format)",
        )


def first_subtitle_flag(chosen: formats.SubtitleOptions) -> str:
    """The flag an error names: the first subtitle option given."""
    given = [
        ("--max-line-width", chosen.max_line_width is not None),
        ("--max-line-count", chosen.max_line_count is not None),
        ("--max-words-per-line", chosen.max_words_per_line is not None),
        ("--highlight-words", chosen.highlight_words),
    ]
    return next(flag for flag, on in given if on)
