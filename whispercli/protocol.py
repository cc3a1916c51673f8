"""The wire protocol: the payload shapes the client side and the server side share.

It names the Tiyaro async API's paths, statuses and Whisper input parameters, plus the
local server's optional extensions, and parses job bodies liberally (a client must accept
a poll body nested under ``"response"`` and unknown fields). It imports nothing heavy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from whispercli.errors import WhisperCliError

UPLOAD_URL_PATH = "/v1/input/upload-url"
"""Step 1: ``POST`` with ``?extension=mp3`` returns 201 ``{"uploadUrl": {"PUT": url}}``."""
UPLOAD_PUT_PATH = "/v1/input/uploads/{upload_id}"
"""Step 2 (local server): the signed URL the client ``PUT``s raw bytes to."""
SUBMIT_PATH = "/v1/async/ent/tiyarofs/1/openai/whisper-{model}"
"""Step 3: ``POST`` with ``?serviceTier=cpuflex|gpuflex`` returns 202 ``{"response": job}``."""
JOBS_PATH = "/v1/async/jobs"
"""Extension: ``GET`` lists jobs (newest first)."""
JOB_PATH = "/v1/async/jobs/{job_id}"
"""Step 4 (local server): the signed poll URL; ``DELETE`` removes a job and its data."""
JOB_CANCEL_PATH = "/v1/async/jobs/{job_id}/cancel"
HEALTH_PATH = "/v1/health"

TIERS = ("cpuflex", "gpuflex")
DEFAULT_TIER = "cpuflex"
DEFAULT_MODEL = "tiny"
"""The model of a request that names none."""

IDEMPOTENCY_HEADER = "Idempotency-Key"
WAIT_PARAM = "wait"
"""Long-poll: ``GET <poll url>?wait=SECONDS`` returns as soon as the status changes."""
MAX_LONG_POLL_SECONDS = 60
UNTIL_PARAM = "until"
"""With ``wait``: ``until=done`` holds the answer until the job finishes (not on every status
change), so a quiet waiter spends one request per long-poll period."""


class Status(StrEnum):
    ACCEPTED = "accepted"
    PENDING = "pending"
    PROCESSING = "processing"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.SUCCESS, Status.FAILED, Status.CANCELLED})
QUEUED_STATUSES = frozenset({Status.ACCEPTED, Status.PENDING})
"""Waiting for a worker (counted against the queue limit)."""
ACTIVE_STATUSES = QUEUED_STATUSES | {Status.PROCESSING}
"""Not finished yet: queued or processing."""
JOB_FAILED_CODE = "job_failed"
INVALID_FILE_CODE = "invalid_file"
JOB_CANCELLED_CODE = "job_cancelled"
JOB_ENDED_CODES = frozenset({JOB_FAILED_CODE, INVALID_FILE_CODE, JOB_CANCELLED_CODE})
"""The embedded server's OpenAI-route error codes for a job that ran and did not succeed; the
openai backend turns them into exit 3, as the other backends' failed jobs."""
JOB_FIELDS = frozenset(
    {
        "id", "status", "model", "acceptedAt", "startedAt", "completedAt", "urls",
        "progress", "segments", "result", "error", "waiting",
    }
)  # fmt: skip
"""The fields of a job body (submit or poll); any other field is kept in ``JobInfo.extra``."""

# Whisper input parameters of the seed's sample client, and the JSON types each accepts.
# ``None`` is accepted for every one of them (the sample sends ``"length_penalty": None``).
# ``suppress_tokens`` is the string "-1" in the sample (a comma-separated list of ids);
# a JSON list of ints is accepted too. ``temperature`` may be one number or a list.
WHISPER_PARAMS: dict[str, tuple[type, ...]] = {
    "language": (str,),
    "task": (str,),
    "temperature": (int, float, list),
    "temperature_increment_on_fallback": (int, float),
    "beam_size": (int,),
    "best_of": (int,),
    "patience": (int, float),
    "length_penalty": (int, float),
    "no_speech_threshold": (int, float),
    "compression_ratio_threshold": (int, float),
    "logprob_threshold": (int, float),
    "condition_on_previous_text": (bool,),
    "initial_prompt": (str,),
    "hotwords": (str,),
    "suppress_tokens": (str, list),
    "word_timestamps": (bool,),
    "vad_filter": (bool,),
    "no_speech_gate": (bool,),
    "speed": (str,),
}
TASKS = ("transcribe", "translate")
SPEEDS = ("accurate", "default", "fast")
"""Extension: ``input.speed`` picks the local engine's decoding speed. Other extensions:
``hotwords`` (faster-whisper's: names and terms the decoder is prompted with, on every window),
``vad_filter`` (default true: decode only what Silero VAD calls speech) and ``no_speech_gate``
(default: as ``vad_filter``; drop segments Whisper calls probably not speech, and loops)."""


class ProtocolError(WhisperCliError, ValueError):
    """A body that cannot be read as a job at all (no id, no status, an id that is not one)."""


JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
"""What a job id from any server must look like before it goes into a URL path or a file: our
server's ids are 32 hex digits, Eden's UUIDs, other vendors' similar; never ``..`` or ``/``."""


def check_job_id(job_id: str) -> str:
    """``job_id`` if it is a plausible id, else :class:`ProtocolError` (a server that names a
    job ``../../x`` must not make us send a request to another path)."""
    if not JOB_ID_RE.fullmatch(job_id):
        shown = job_id if len(job_id) <= 40 else job_id[:40] + "..."
        raise ProtocolError(f"the server named a job {shown!r}, which is not a job id")
    return job_id


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        known = {"id", "start", "end", "text"}
        return cls(
            id=int(_number(data.get("id"))),
            start=_number(data.get("start")),
            end=_number(data.get("end")),
            text=str(data.get("text", "") or ""),
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            **self.extra,
        }


@dataclass
class Result:
    text: str
    segments: list[Segment]
    language: str | None = None
    duration: float | None = None
    warnings: list[str] = field(default_factory=list)
    """Extension: why the transcript may be wrong (low confidence, repeats, no speech)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = {"text", "segments", "language", "duration", "warnings"}
        raw_segments = data.get("segments")
        if not isinstance(raw_segments, list):
            raw_segments = []
        segments = [Segment.from_dict(s) for s in raw_segments if isinstance(s, dict)]
        text = data.get("text")
        if not isinstance(text, str):
            text = "".join(s.text for s in segments)
        duration = data.get("duration")
        warnings = data.get("warnings")
        return cls(
            text=text,
            segments=segments,
            language=data.get("language") if isinstance(data.get("language"), str) else None,
            duration=_number(duration) if isinstance(duration, int | float) else None,
            warnings=[str(w) for w in warnings] if isinstance(warnings, list) else [],
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "segments": [s.to_dict() for s in self.segments],
            "language": self.language,
            "duration": self.duration,
            "warnings": self.warnings,
            **self.extra,
        }


@dataclass
class JobInfo:
    """One job as a poll (or submit) body describes it."""

    id: str
    status: str
    model: str | None = None
    accepted_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    poll_url: str | None = None
    progress: float | None = None
    partial_segments: list[Segment] = field(default_factory=list)
    result: Result | None = None
    error: str | None = None
    waiting: str | None = None
    """While pending, why the job has not started (a server with workers says)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_job_id(self.id)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_body(cls, body: Any) -> JobInfo:
        """Parse a submit or poll body, nested under ``"response"`` or not."""
        if not isinstance(body, dict):
            raise ProtocolError("the server's answer is not a JSON object")
        data = body
        inner = body.get("response")
        if isinstance(inner, dict) and ("id" in inner or "status" in inner):
            data = inner
        job_id = data.get("id")
        status = data.get("status")
        if not isinstance(job_id, str) or not isinstance(status, str):
            raise ProtocolError("the server's answer has no job id and status")
        urls = data.get("urls")
        poll_url = urls.get("GET") if isinstance(urls, dict) else None
        raw_result = data.get("result")
        progress = data.get("progress")
        partial = data.get("segments")
        return cls(
            id=job_id,
            status=status.lower(),
            model=_opt_str(data.get("model")),
            accepted_at=_opt_str(data.get("acceptedAt")),
            started_at=_opt_str(data.get("startedAt")),
            completed_at=_opt_str(data.get("completedAt")),
            poll_url=poll_url if isinstance(poll_url, str) else None,
            progress=_number(progress) if isinstance(progress, int | float) else None,
            partial_segments=[Segment.from_dict(s) for s in partial if isinstance(s, dict)]
            if isinstance(partial, list)
            else [],
            result=Result.from_dict(raw_result) if isinstance(raw_result, dict) else None,
            error=_error_text(data.get("error")),
            waiting=_opt_str(data.get("waiting")),
            extra={k: v for k, v in data.items() if k not in JOB_FIELDS},
        )


def _number(value: Any) -> float:
    """A finite number from a liberal body: anything unreadable counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0.0
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _error_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value.get("message") or value)
    return str(value)


def is_http_url(text: str) -> bool:
    """True for an ``http://`` or ``https://`` URL (the one check; not a path or ``-``)."""
    return text.startswith(("http://", "https://"))
