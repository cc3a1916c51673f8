"""Exception types and the exit codes they map to (one enum, documented in --help and README)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    JOB_FAILED = 3
    NOT_FOUND = 4
    AUTH = 5
    UNREACHABLE = 6
    TIMEOUT = 7
    INTERRUPTED = 130


EXIT_CODE_HELP = (
    "Exit codes: 0 ok, 1 error, 2 usage, 3 job failed or cancelled, 4 not found, "
    "5 auth, 6 server unreachable, 7 timed out waiting, 130 interrupted."
)


class WhisperCliError(Exception):
    """Every failure a person can act on: a message, an optional hint and an exit code."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.status = status

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
