"""Options shared by ``transcribe``, ``submit`` and ``wait``: the model, tier, Whisper parameters
and the subtitle options."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

import whispercli.formats as formats
from whispercli.errors import UsageError
from whispercli.protocol import DEFAULT_TIER, SPEEDS, TASKS, TIERS

if TYPE_CHECKING:
    from whispercli.protocol import Result

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


Webhook = Annotated[
    str | None,
    typer.Option(
        "--webhook",
        metavar="URL",
        help="POST the job to URL when it ends (signed: `whispercli server webhook-secret`).",
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "-m",
        "--model",
        metavar="MODEL",
        help="Model name [tiny]; `whispercli models list` lists the models.",
    ),
]
Tier = Annotated[
    str | None, choice("--tier", choices=TIERS, help=f"Service tier [{DEFAULT_TIER}].")
]
Language = Annotated[
    str | None,
    typer.Option(
        "-l",
        "--language",
        metavar="LANG",
        help="Spoken language (e.g. en); detected when omitted.",
    ),
]
Task = Annotated[
    str | None,
    choice("--task", choices=TASKS, help="translate: to English.", rich_help_panel=_W),
]
BeamSize = Annotated[
    int | None, typer.Option("--beam-size", metavar="N", min=1, rich_help_panel=_W)
]
BestOf = Annotated[int | None, typer.Option("--best-of", metavar="N", min=1, rich_help_panel=_W)]
Temperature = Annotated[
    float | None, typer.Option("--temperature", metavar="T", min=0, rich_help_panel=_W)
]
Patience = Annotated[
    float | None, typer.Option("--patience", metavar="P", min=0, rich_help_panel=_W)
]
InitialPrompt = Annotated[
    str | None, typer.Option("--initial-prompt", metavar="TEXT", rich_help_panel=_W)
]
Hotwords = Annotated[
    str | None,
    typer.Option(
        "--hotwords",
        metavar="TEXT",
        help="Names and jargon to expect (faster-whisper's hotwords), e.g. 'Siobhan, Kubernetes'.",
        rich_help_panel=_W,
    ),
]
ConditionOnPrevious = Annotated[
    bool | None,
    typer.Option(
        "--condition-on-previous-text/--no-condition-on-previous-text", rich_help_panel=_W
    ),
]
WordTimestamps = Annotated[
    bool | None, typer.Option("--word-timestamps/--no-word-timestamps", rich_help_panel=_W)
]
VadFilter = Annotated[bool | None, typer.Option("--vad-filter/--no-vad-filter", rich_help_panel=_W)]
Speed = Annotated[
    str | None,
    choice(
        "--speed",
        choices=SPEEDS,
        help="Decoding speed on the embedded server.",
        rich_help_panel=_W,
    ),
]
MaxLineWidth = Annotated[
    int | None,
    typer.Option(
        "--max-line-width",
        metavar="N",
        min=1,
        help="Break subtitle lines at N characters.",
        rich_help_panel=_S,
    ),
]
MaxLineCount = Annotated[
    int | None,
    typer.Option(
        "--max-line-count",
        metavar="N",
        min=1,
        help="At most N lines a cue (with --max-line-width): cues then run across segments and "
        "break at pauses over 3 s.",
        rich_help_panel=_S,
    ),
]
MaxWordsPerLine = Annotated[
    int | None,
    typer.Option(
        "--max-words-per-line",
        metavar="N",
        min=1,
        help="At most N words a cue (not with --max-line-count).",
        rich_help_panel=_S,
    ),
]
HighlightWords = Annotated[
    bool,
    typer.Option(
        "--highlight-words",
        help="A cue per word spoken, that word underlined.",
        rich_help_panel=_S,
    ),
]
Providers = Annotated[
    list[str] | None,
    typer.Option(
        "--provider",
        metavar="NAME[,NAME]",
        help="Eden AI: the vendors to run (repeatable; the profile's providers by default). "
        "Text output takes the first.",
    ),
]
Force = Annotated[
    bool,
    typer.Option("--force", help="Submit again even if the same file and options already ran."),
]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Print only the essential data.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def whisper_params(
    language: str | None,
    task: str | None,
    beam_size: int | None,
    best_of: int | None,
    temperature: float | None,
    patience: float | None,
    initial_prompt: str | None,
    condition_on_previous_text: bool | None,
    word_timestamps: bool | None,
    vad_filter: bool | None,
    speed: str | None = None,
    hotwords: str | None = None,
) -> dict[str, Any]:
    """The Whisper input parameters given on the command line (unset ones left out)."""
    params = {
        "language": language,
        "task": task,
        "beam_size": beam_size,
        "best_of": best_of,
        "temperature": temperature,
        "patience": patience,
        "initial_prompt": initial_prompt,
        "condition_on_previous_text": condition_on_previous_text,
        "word_timestamps": word_timestamps,
        "vad_filter": vad_filter,
        "speed": speed,
        "hotwords": hotwords,
    }
    return {k: v for k, v in params.items() if v is not None}


def providers_of(given: list[str] | None) -> list[str]:
    """``--provider a,b --provider c`` -> ``["a", "b", "c"]``."""
    from whispercli.config import split_providers

    return [name for item in given or [] for name in split_providers(item)]


def model_and_tier(
    ctx_settings_model: str | None,
    ctx_settings_tier: str | None,
    model: str | None,
    tier: str | None,
) -> tuple[str, str]:
    """Flag, else the profile's default, else tiny / cpuflex."""
    chosen_tier = tier or ctx_settings_tier or DEFAULT_TIER
    if chosen_tier not in TIERS:
        raise typer.BadParameter(f"--tier must be one of {', '.join(TIERS)}")
    return model or ctx_settings_model or "tiny", chosen_tier


def subtitle_options(
    max_line_width: int | None,
    max_line_count: int | None,
    max_words_per_line: int | None,
    highlight_words: bool,
    word_timestamps: bool | None,
    written: Sequence[str],
) -> formats.SubtitleOptions:
    """The subtitle options given, once checked against each other, against
    ``--word-timestamps`` (None: not given) and against the formats ``written``: exit 2 when
    one would do nothing. When any is given, the job must have word timings: the caller asks
    for them (``word_timestamps=True``)."""
    chosen = formats.SubtitleOptions(
        max_line_width, max_line_count, max_words_per_line, highlight_words
    )
    if not chosen.given:
        return chosen
    if max_line_count is not None and max_line_width is None:
        raise UsageError(
            "--max-line-count needs --max-line-width (the lines it counts are that wide)",
            hint="add --max-line-width N (42 is common), or drop --max-line-count",
        )
    if max_line_count is not None and max_words_per_line is not None:
        raise UsageError(
            "--max-words-per-line does nothing with --max-line-count (openai-whisper's cues "
            "then follow the line width and count only)",
            hint="cut cues by lines (--max-line-width N --max-line-count N) or by words "
            "(--max-words-per-line N, with or without --max-line-width)",
        )
    flag = _first_subtitle_flag(chosen)
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
    return chosen


def _first_subtitle_flag(chosen: formats.SubtitleOptions) -> str:
    """The flag an error names: the first subtitle option given."""
    given = [
        ("--max-line-width", chosen.max_line_width is not None),
        ("--max-line-count", chosen.max_line_count is not None),
        ("--max-words-per-line", chosen.max_words_per_line is not None),
        ("--highlight-words", chosen.highlight_words),
    ]
    return next(flag for flag, on in given if on)


def check_word_timings(
    label: str, result: Result, subtitles: formats.SubtitleOptions, written: Sequence[str]
) -> None:
    """A result without word timings cannot be cut as asked (a job submitted without
    ``--word-timestamps``, waited for with ``--max-line-width``): exit 2 rather than print
    cues of another shape."""
    if (
        subtitles.given
        and set(written) & set(formats.SUBTITLE_FORMATS)
        and result.segments
        and not formats.has_words(result)
    ):
        raise UsageError(
            f"{label}: the job's result has no word timings, which "
            f"{_first_subtitle_flag(subtitles)} needs",
            hint="submit it again with --word-timestamps (transcribe with a subtitle option "
            "asks for them)",
        )
