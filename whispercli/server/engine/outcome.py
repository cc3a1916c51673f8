"""What an engine tells about a job: its news (:class:`JobSink`) and how it can end without a
transcript. No heavy imports: the server's side of the engine process reads these too."""

from __future__ import annotations

from typing import Any, Protocol


class JobInputError(ValueError):
    """The job cannot be run as asked (its upload or its params): the job's error is this
    message, meant for the person who submitted it (a failure, not a crash)."""


class AudioError(JobInputError):
    """The upload cannot be transcribed (empty, not audio, no samples, too long)."""


class JobCancelled(Exception):
    """The job was cancelled while the engine worked on it."""


class JobSink(Protocol):
    """Where one job's news goes (the engine process sends it on to the server)."""

    def segment(self, segment: dict[str, Any] | None, progress: float) -> None:
        """A finished segment (in time order) and the progress 0..1, or None and the
        progress alone (while a chunk decodes, about every second)."""
        ...

    def done(self, result: dict[str, Any] | None, error: BaseException | None) -> None:
        """Once: the result, or the error (:class:`JobCancelled` when cancelled)."""
        ...
