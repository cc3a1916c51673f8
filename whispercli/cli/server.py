"""`whispercli server run|start|stop|status`: the embedded server's lifecycle."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run and manage the embedded local transcription server.", no_args_is_help=True)
