"""`whispercli config show|set|unset|path`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

import whispercli.config as config
import whispercli.paths as paths
from whispercli.cli import options as o
from whispercli.cli.context import globals_of
from whispercli.cli.output import data, emit_json, note
from whispercli.errors import WhisperCliError

app = typer.Typer(
    help="Show and change settings (config.toml, named profiles).", no_args_is_help=True
)

ProfileOpt = Annotated[
    str | None, typer.Option("--profile", help="The profile to change [the default one].")
]
_SOURCES = {"profile": "profile_source", "url": "url_source", "api_key": "key_source"}


def _toml_value(value: Any) -> str:
    """One value as TOML writes it (``"text"``, ``true``, ``["a", "b"]``)."""
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _show_lines(body: dict[str, Any]) -> list[str]:
    """``key = value  # source`` lines (valid TOML); unset values and the key are comments."""
    lines = []
    for key, value in body.items():
        if key.endswith("_source") or key == "key_source":
            continue
        source = body.get(_SOURCES.get(key, ""))
        comment = f"  # {source}" if source else ""
        if key == "api_key":
            lines.append(f"# api_key: {value} ({source})")
        elif value is None:
            lines.append(f"# {key}: not set")
        else:
            lines.append(f"{key} = {_toml_value(value)}{comment}")
    return lines


@app.command("show")
def show(ctx: typer.Context, json_out: o.Json = False, quiet: o.Quiet = False) -> None:
    """Show the settings in effect and where each came from (the key itself is never shown).

    Works with a broken config file too: it then says what is wrong (exit 0), so that
    `config set` / `config unset` can repair it. -q prints only the URL in effect."""
    g = globals_of(ctx)
    try:
        settings = config.resolve(url=g.url, api_key=g.api_key, profile=g.profile)
        body: dict[str, Any] = settings.public_dict()
        body["profiles"] = sorted(config.profiles())
    except WhisperCliError as exc:
        note(f"warning: {exc.message}")
        if exc.hint:
            note(f"hint: {exc.hint}")
        body = {"config_file": str(paths.config_file()), "error": exc.message}
    if json_out:
        emit_json(body)
    elif quiet:
        if "url" in body:
            data(body["url"])
    else:
        data("\n".join(_show_lines(body)))


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="profile, " + ", ".join(config.PROFILE_KEYS))],
    value: Annotated[str, typer.Argument()],
    profile: ProfileOpt = None,
    quiet: o.Quiet = False,
) -> None:
    """Set a value: `profile NAME` picks the default profile (one that exists); other keys go
    in a profile's table (--profile, else the default profile)."""
    path = config.set_value(key, value, profile=profile or globals_of(ctx).profile)
    note(f"saved {key} in {path}", quiet=quiet)


@app.command("unset")
def unset(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="profile, " + ", ".join(config.PROFILE_KEYS))],
    profile: ProfileOpt = None,
    quiet: o.Quiet = False,
) -> None:
    """Remove a value (`profile`: back to the local default; other keys: from a profile's
    table, --profile else the default profile). Removing what is not set is not an error."""
    found = config.unset_value(key, profile=profile or globals_of(ctx).profile)
    where = paths.config_file()
    note(f"removed {key} from {where}" if found else f"{key} was not set in {where}", quiet=quiet)


@app.command("path")
def path(json_out: o.Json = False) -> None:
    """Print the config file's path."""
    if json_out:
        emit_json({"config_file": str(paths.config_file())})
    else:
        data(str(paths.config_file()))
