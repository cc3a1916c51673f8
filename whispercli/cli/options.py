"""Options shared by ``transcribe`` and ``submit``: the model, tier and Whisper parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

import whispercli.formats as formats
from whispercli.protocol import DEFAULT_TIER, SPEEDS, TASKS, TIERS

_W = "Whisper options"


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
