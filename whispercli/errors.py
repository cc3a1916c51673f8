"""Exception types and the exit codes they map to (one enum, documented in --help and README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Each code with the words ``--help`` and README use for it."""

    description: str

    def __new__(cls, value: int, description: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    OK = 0, "ok"
    ERROR = 1, "error"
    USAGE = 2, "usage"
    JOB_FAILED = 3, "job failed or cancelled"
    NOT_FOUND = 4, "not found"
    AUTH = 5, "auth"
    UNREACHABLE = 6, "server unreachable"
    TIMEOUT = 7, "timed out waiting"
    INTERRUPTED = 130, "interrupted"


EXIT_CODE_HELP = "Exit codes: " + ", ".join(f"{c.value} {c.description}" for c in ExitCode) + "."


def seconds_text(value: float) -> str:
    """A duration as messages say it: "0.5 s", "1 s", "2.5 s", "90 s" (two significant
    digits below 10 s, whole seconds above; never "0 s" for a sub-second one)."""
    return f"{value:.0f} s" if value >= 10 else f"{value:.2g} s"


class WhisperCliError(Exception):
    """Every failure a person can act on: a message, an optional hint and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status
        self.code: str | None = None
        """The server's ``error.code`` when an HTTP error carried one (``job_failed``...)."""
        self.reply: str | None = None
        """The server's own message, for an HTTP error."""

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(WhisperCliError):
    exit_code = ExitCode.USAGE


class JobFailedError(WhisperCliError):
    exit_code = ExitCode.JOB_FAILED


class NotFoundError(WhisperCliError):
    exit_code = ExitCode.NOT_FOUND


class AuthError(WhisperCliError):
    exit_code = ExitCode.AUTH


class UnreachableError(WhisperCliError):
    exit_code = ExitCode.UNREACHABLE


class WaitTimeoutError(WhisperCliError):
    exit_code = ExitCode.TIMEOUT


class Interrupted(Exception):
    """Ctrl-C, raised by a command with the jobs it leaves running and, when ``whispercli
    wait IDS`` would not finish them as asked, the ``command`` that does. Not a
    KeyboardInterrupt, which typer turns into a silent exit 130: this one reaches ``main()``,
    which says so."""

    def __init__(self, job_ids: list[str], command: str | None = None) -> None:
        super().__init__(job_ids)
        self.job_ids = job_ids
        self.command = command
