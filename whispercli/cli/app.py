"""The Typer application: wires the command groups together and turns exceptions into
exit codes (the one place that does). Command modules import heavy things lazily."""

from __future__ import annotations

import os
import sys

import typer

from whispercli.cli import server as server_cmd
from whispercli.errors import EXIT_CODE_HELP, ExitCode, WhisperCliError

app = typer.Typer(
    name="whispercli",
    help="Asynchronous speech-to-text: upload, submit, wait, transcribe.\n\n" + EXIT_CODE_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(server_cmd.app, name="server")


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("WHISPERCLI_DEBUG") == "1"


def main() -> None:
    """Console entry point: run the app, print one readable line per failure."""
    debug = _debug_requested(sys.argv[1:])
    try:
        result = app(standalone_mode=False)
    except WhisperCliError as exc:
        if debug:
            raise
        print(f"whispercli: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"whispercli: hint: {exc.hint}", file=sys.stderr)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        print("whispercli: interrupted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("whispercli: aborted", file=sys.stderr)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # click usage errors and anything unexpected
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(int(ExitCode.USAGE) if isinstance(exc, click.UsageError) else exc.exit_code)
        if debug:
            raise
        print(f"whispercli: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("whispercli: hint: run again with --debug for a traceback", file=sys.stderr)
        sys.exit(int(ExitCode.ERROR))
    sys.exit(result if isinstance(result, int) else 0)
