"""`whispercli config show|set|path`."""

from __future__ import annotations

from typing import Annotated

import typer

from whispercli import config, paths
from whispercli.cli import options as o
from whispercli.cli.context import globals_of
from whispercli.cli.output import data, emit_json, note

app = typer.Typer(
    help="Show and change settings (config.toml, named profiles).", no_args_is_help=True
)


@app.command("show")
def show(ctx: typer.Context, json_out: o.Json = False) -> None:
    """Show the settings in effect and where each came from (the key itself is never shown)."""
    g = globals_of(ctx)
    settings = config.resolve(url=g.url, api_key=g.api_key, profile=g.profile)
    body = settings.public_dict()
    body["profiles"] = sorted(config.profiles())
    if json_out:
        emit_json(body)
        return
    for key, value in body.items():
        data(f"{key}: {', '.join(value) if isinstance(value, list) else value}")


@app.command("set")
def set_(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="profile, " + ", ".join(config.PROFILE_KEYS))],
    value: Annotated[str, typer.Argument()],
    profile: Annotated[
        str | None, typer.Option("--profile", help="The profile to change [the default one].")
    ] = None,
    quiet: o.Quiet = False,
) -> None:
    """Set a value: `profile NAME` picks the default profile; other keys go in a profile's
    table (--profile, else the default profile)."""
    path = config.set_value(key, value, profile=profile or globals_of(ctx).profile)
    note(f"saved {key} in {path}", quiet=quiet)


@app.command("path")
def path() -> None:
    """Print the config file's path."""
    data(str(paths.config_file()))
