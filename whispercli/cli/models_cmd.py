"""`whispercli models`: the models the endpoint can run (its /v1/health list)."""

from __future__ import annotations

import typer

from whispercli.cli import options as o
from whispercli.cli.context import get_client
from whispercli.cli.output import data, emit_json
from whispercli.errors import AuthError, UnreachableError, WhisperCliError


def models(ctx: typer.Context, json_out: o.Json = False) -> None:
    """List the models the server has installed (names for -m/--model)."""
    client = get_client(ctx)
    try:
        names = client.health().get("models")
    except (AuthError, UnreachableError):
        raise
    except WhisperCliError:
        names = None  # no health extension (a remote Tiyaro endpoint)
    if not isinstance(names, list):
        raise WhisperCliError(
            f"the server at {client.url} does not list its models",
            hint="see the provider's documentation for the model names it offers",
        )
    if json_out:
        emit_json({"models": names})
    else:
        for name in names:
            data(str(name))
