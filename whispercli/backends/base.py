"""What every backend implements, and the one way a backend says a verb is not in its protocol.

A backend turns the verbs of ``Client``/``Job`` (upload, submit, poll, list, cancel, delete)
into its protocol's requests through the client's one HTTP core, and its answers into
``JobInfo``/``Result``. ``Job.wait`` stays generic: it only calls ``poll``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from whispercli.backends.streams import ProgressCallback
from whispercli.errors import NotFoundError, UsageError
from whispercli.protocol import DEFAULT_MODEL, is_http_url

if TYPE_CHECKING:
    from whispercli.client import Job
    from whispercli.config import Settings
    from whispercli.http import HttpCore
    from whispercli.protocol import JobInfo

JobCallback = Callable[["JobInfo"], None]
"""``on_progress(info)``: a job's state as it moves (status, progress, partial segments)."""
NO_JOBS_HINT = (
    "its answer comes back in the request that sends the file: use `whispercli transcribe "
    "FILE` (jobs saved from other profiles resume with their own)"
)


class Transport(Protocol):
    """What a backend uses of the client: its endpoint and settings, and the one HTTP core.

    ``whispercli.client.Client`` is the implementation; ``call`` is one JSON request (timeouts,
    safe retries, errors mapped to ``WhisperCliError``; the local server auto-started once),
    ``http`` the core itself for requests that are not JSON (an upload's PUT, a stream).
    """

    settings: Settings
    http: HttpCore

    @property
    def url(self) -> str: ...

    def call(self, method: str, path_or_url: str, **kwargs: Any) -> Any: ...


@dataclass
class Submission:
    """One submit: a local file or a URL, and the options for it."""

    source: str | os.PathLike[str]
    model: str | None
    """None: the protocol's default. After ``Backend.prepare``: what the job runs."""
    tier: str
    params: dict[str, Any] = field(default_factory=dict)
    """Whisper input parameters (``None`` values already dropped)."""
    providers: list[str] = field(default_factory=list)
    """Eden AI's vendors (empty: the profile's ``providers``)."""
    idempotency_key: str | None = None
    on_upload_progress: ProgressCallback | None = None
    webhook: str | None = None
    """A URL the server POSTs the job to when it ends."""
    on_progress: JobCallback | None = None
    """For a protocol whose submit answers only once the job has ended (``has_jobs`` False):
    called with the partial segments as they arrive (OpenAI's ``stream``). Other protocols give
    them to ``Job.wait``'s ``on_progress`` instead."""


class Backend:
    """The verbs a protocol may offer; each one a protocol lacks raises ``unsupported``."""

    name: ClassVar[str]
    label: ClassVar[str]
    """How messages name the protocol (``Eden AI``)."""
    default_model: ClassVar[str] = DEFAULT_MODEL
    """The model of a submit that names none."""
    has_jobs: ClassVar[bool] = True
    """False for a protocol without job ids (OpenAI's answers the transcript in the request
    that sends the file): nothing is saved to resume, and submit/status/wait refuse."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def unsupported(self, verb: str, hint: str) -> UsageError:
        """The error for a verb this protocol cannot do (exit 2)."""
        return UsageError(
            f"{self.label} cannot {verb} (profile {self.transport.settings.profile!r} uses the "
            f"{self.name} backend)",
            hint=hint,
        )

    def prepare(self, request: Submission) -> Submission:
        """``request`` checked (``check``) and as it will be sent: defaults filled in, so its
        ``model`` says what the job runs (the saved job records it)."""
        self.check(request)
        return dataclasses.replace(request, model=request.model or self.default_model)

    def no_jobs(self, verb: str) -> UsageError:
        """The refusal of a verb that needs job ids, by a protocol without them (exit 2)."""
        return self.unsupported(verb, NO_JOBS_HINT)

    def check(self, request: Submission) -> None:
        """Refuse, before any request, options this protocol has no field for (the default:
        Eden AI's ``providers``)."""
        if request.providers:
            raise self.unsupported(
                "pick vendors (--provider)", "--provider is for a profile with backend = edenai"
            )

    def check_upload_size(self, path: str | os.PathLike[str], size: int) -> None:
        """Refuse a file larger than this endpoint takes, before it is hashed or sent."""

    def sendable(self, path: str | os.PathLike[str]) -> tuple[Path, int]:
        """A local file to send, and its size, once ``check_upload_size`` accepts it."""
        file = Path(path)
        try:
            size = file.stat().st_size
        except OSError as exc:
            raise NotFoundError(f"cannot read {file}: {exc.strerror}") from None
        self.check_upload_size(file, size)
        return file, size

    def inline_file(self, request: Submission, why: str) -> tuple[Path, int]:
        """The request's local file, for a protocol that sends the audio in the request
        itself (a URL it cannot take: exit 2 with ``why`` as the hint)."""
        if is_http_url(str(request.source)):
            raise self.unsupported("transcribe a URL", why)
        return self.sendable(request.source)

    def upload(self, path: str | os.PathLike[str], on_progress: ProgressCallback | None) -> str:
        raise self.unsupported(
            "take an upload on its own", "give the file to `whispercli submit` or `transcribe`"
        )

    def submit(self, request: Submission) -> JobInfo:
        raise NotImplementedError

    def poll(self, job: Job, wait: float | None = None, until_done: bool = False) -> JobInfo:
        """One status request for ``job`` (which may get a fresh ``poll_url``)."""
        raise NotImplementedError

    def poll_url(self, job_id: str) -> str | None:
        """The poll URL of a job known only by id (None: the backend finds it otherwise)."""
        return None

    def find(self, job_id: str) -> JobInfo:
        """A job known only by its id."""
        raise self.unsupported(
            "look up a job by id alone", "only jobs submitted from here (saved) resume"
        )

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[JobInfo]:
        raise self.unsupported("list its jobs", "`whispercli jobs list` shows the saved jobs")

    def cancel(self, job_id: str) -> JobInfo:
        raise self.unsupported(
            "cancel a job", "it runs to its end; `whispercli jobs rm JOB` forgets it here"
        )

    def delete(self, job_id: str) -> None:
        raise self.unsupported(
            "delete a job", "`whispercli jobs rm JOB` (without --purge) forgets it here"
        )

    def long_poll(self) -> bool:
        """Whether ``poll(wait=...)`` can hold the answer until the status changes."""
        return False

    def must_download(self, url: str) -> bool:
        """True for a URL the CLI must download and send as a file."""
        return False
