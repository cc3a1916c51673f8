"""The Typer application: wires the command groups together and turns exceptions into
exit codes (the one place that does). Command modules import heavy things lazily."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated, NoReturn

import typer

from whispercli.cli import (
    config_cmd,
    doctor,
    jobs_cmd,
    models_cmd,
    submit,
    transcribe,
    wait_cmd,
    worker_cmd,
)
from whispercli.cli import server as server_cmd
from whispercli.cli.context import globals_of
from whispercli.cli.helpfmt import use_plain_help
from whispercli.cli.output import error, exit_interrupted, say
from whispercli.config import BUILTIN_PROFILES
from whispercli.errors import EXIT_CODE_HELP, ExitCode, Interrupted, WhisperCliError
from whispercli.extras import from_import_error
from whispercli.version import __version__

app = typer.Typer(
    name="whispercli",
    help="Asynchronous speech-to-text: upload, submit, wait, transcribe.\n\n" + EXIT_CODE_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("transcribe")(transcribe.transcribe)
app.command("upload")(submit.upload)
app.command("submit")(submit.submit)
app.command("status")(wait_cmd.status)
app.command("wait")(wait_cmd.wait)
app.add_typer(models_cmd.app, name="models")
app.add_typer(jobs_cmd.app, name="jobs")
app.add_typer(server_cmd.app, name="server")
app.add_typer(worker_cmd.app, name="worker")
app.add_typer(config_cmd.app, name="config")
app.command("doctor")(doctor.doctor)
use_plain_help(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"whispercli {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            metavar="URL",
            help="Server base URL [env WHISPERCLI_URL; default: local server].",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", metavar="KEY", help="API key [env WHISPERCLI_API_KEY; prefer the env var]."
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            metavar="NAME",
            help=f"Config profile: {', '.join(BUILTIN_PROFILES)} or your own "
            "[env WHISPERCLI_PROFILE].",
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Log HTTP requests and show tracebacks.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    g = globals_of(ctx)
    g.url, g.api_key, g.profile, g.debug = url, api_key, profile, debug
    _log_to_stderr(debug)


class _Stderr(logging.Handler):
    """Log lines on stderr as ``whispercli: ...`` (``debug: `` before debug lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "debug: " if record.levelno < logging.INFO else ""
        say(f"whispercli: {level}{record.getMessage()}")


def _log_to_stderr(debug: bool) -> None:
    """The HTTP core's warnings (each retry) always; with --debug, every line of our loggers
    (ours only: urllib3 would log signed URLs unredacted). Idempotent: main() may run again."""
    for name in ("whispercli", "whispercli.http"):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, _Stderr)]:
            logger.removeHandler(handler)
    logger = logging.getLogger("whispercli" if debug else "whispercli.http")
    if debug:
        logger.setLevel(logging.DEBUG)
    logger.addHandler(_Stderr(logging.DEBUG if debug else logging.WARNING))


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("WHISPERCLI_DEBUG") == "1"


def _click_errors() -> tuple[type[Exception], type[Exception]]:
    """``(ClickException, UsageError)`` of the click that typer runs on: the copy recent typer
    bundles (``typer._click``) or, with older typer, the ``click`` package itself."""
    module = sys.modules[typer.BadParameter.__module__]
    return module.ClickException, module.UsageError


def _fail(exc: WhisperCliError, debug: bool) -> NoReturn:
    """One readable error line (and its hint), the exit code of the error."""
    if debug:  # the traceback, then the same readable lines and exit code
        import traceback

        traceback.print_exc()
    error(exc.message, exc.hint)
    sys.exit(int(exc.exit_code))


_GLOBAL_VALUES = ("--url", "--api-key", "--profile")


def _command_path(argv: list[str]) -> str:
    """``whispercli server migrate`` from the arguments, for messages."""
    import typer.main

    command: object = typer.main.get_command(app)
    path = ["whispercli"]
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_VALUES:
            next(args, None)
            continue
        if arg.startswith("-"):
            continue
        subs = getattr(command, "commands", None)
        if subs is None or arg not in subs:
            break
        path.append(arg)
        command = subs[arg]
    return " ".join(path)


def _click_failure(exc: Exception, usage: bool) -> int:
    """Print a Click error as every other error reads (``whispercli: error:`` and a hint),
    after the command's usage line for a usage error; return the exit code."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group given no command: its help
        exc.show()  # type: ignore[attr-defined]
        return int(ExitCode.USAGE)
    ctx = getattr(exc, "ctx", None)
    if usage and ctx is not None:
        say(ctx.get_usage())
    message = exc.format_message().strip().removesuffix(".")  # type: ignore[attr-defined]
    if message[:1].isupper() and message[1:2].islower():  # "Invalid value" -> "invalid value"
        message = message[0].lower() + message[1:]
    if not usage:
        error(message)
        return int(getattr(exc, "exit_code", ExitCode.ERROR))
    command = ctx.command_path if ctx is not None else "whispercli"
    error(message, f"see `{command} --help`")
    return int(ExitCode.USAGE)


def main() -> None:
    """Console entry point: run the app, print one readable line per failure."""
    debug = _debug_requested(sys.argv[1:])
    click_error, usage_error = _click_errors()
    try:
        result = app(prog_name="whispercli", standalone_mode=False)
    except WhisperCliError as exc:
        _fail(exc, debug)
    except Interrupted as exc:  # Ctrl-C in a command that has jobs to name
        exit_interrupted(exc.job_ids, exc.command)
    except (KeyboardInterrupt, typer.Abort):  # Abort: older typer's (click's) Ctrl-C
        exit_interrupted()
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click_error as exc:  # usage errors: the usage line, then our error and hint; exit 2
        sys.exit(_click_failure(exc, isinstance(exc, usage_error)))
    except Exception as exc:  # anything unexpected, or an extra that is not installed
        missing = isinstance(exc, ModuleNotFoundError) and from_import_error(
            exc, _command_path(sys.argv[1:])
        )
        if missing:
            _fail(missing, debug)
        if debug:
            raise
        error(f"unexpected {type(exc).__name__}: {exc}", "run again with --debug for a traceback")
        sys.exit(int(ExitCode.ERROR))
    if result == ExitCode.INTERRUPTED:  # recent typer's Ctrl-C: a silent Exit(130), returned
        exit_interrupted()
    sys.exit(result if isinstance(result, int) else 0)
