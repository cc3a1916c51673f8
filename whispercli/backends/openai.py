"""OpenAI's audio API (``POST {base}/audio/transcriptions`` and ``/audio/translations``): the
protocol of api.openai.com, Groq, speaches, LocalAI, vLLM and the embedded server's OpenAI
routes. ``base`` includes ``/v1``.

One multipart request sends the file and answers the transcript: there are no job ids, so
nothing is saved to resume, and submit/status/wait/jobs refuse (exit 2) before any request. The
answer is ``verbose_json`` (segments with times, top-level ``words`` when asked for, which are
put back into their segments here); with an ``on_progress`` callback the request streams
(``stream=true``): each ``transcript.text.delta`` joins the segment its ``segment_id`` names (a
server that sends none gives one running segment), ``transcript.text.done`` ends it. gpt-4o
models answer ``json`` only: they get it, text without times.

Options OpenAI's API has no field for (``--beam-size``, ``--vad-filter``...) go as extra form
fields, as the SDK's ``extra_body`` sends them to self-hosted servers; api.openai.com refuses
them here, and takes at most 25 MiB a file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

import whispercli.backends as backends
from whispercli.backends.base import Backend, JobCallback, Submission
from whispercli.backends.streams import CountingReader, MultipartBody, ProgressCallback
from whispercli.errors import (
    JobFailedError,
    UnreachableError,
    UsageError,
    WhisperCliError,
)
from whispercli.protocol import JOB_ENDED_CODES, JOB_ID_RE, JobInfo, Result, Segment
from whispercli.units import human_bytes

if TYPE_CHECKING:
    from whispercli.client import Job

OPENAI_HOST = "api.openai.com"
OPENAI_MAX_BYTES = 25 * 1024 * 1024
"""OpenAI's own limit per file (its servers answer 413 above it)."""
TRANSCRIPTIONS_PATH = "/audio/transcriptions"
TRANSLATIONS_PATH = "/audio/translations"
READ_TIMEOUT = 600.0
"""Seconds without a byte from the server before giving up (the openai SDK's timeout); on a
stream every delta and keep-alive starts it again."""
NATIVE_PARAMS = frozenset({"language", "initial_prompt", "temperature", "task", "word_timestamps"})
"""The options OpenAI's API has a field for; the others go as extra fields."""


class OpenAIBackend(Backend):
    name = backends.OPENAI
    label = "OpenAI"
    has_jobs = False
    default_model = "whisper-1"  # OpenAI's name; the embedded server takes it as its default

    def official(self) -> bool:
        """Whether the endpoint is OpenAI's own service (its limits and fields apply)."""
        return urlsplit(self.transport.url).hostname == OPENAI_HOST

    def check(self, request: Submission) -> None:
        super().check(request)
        if request.webhook is not None:
            raise self.unsupported("call a webhook", "the transcript comes back in the request")
        if not self.official():
            return
        others = sorted(set(request.params) - NATIVE_PARAMS)
        if request.params.get("task") == "translate" and "language" in request.params:
            others.append("language")
        if isinstance(request.params.get("temperature"), list):
            others.append("temperature")
        if others:
            flags = ", ".join("--" + name.replace("_", "-") for name in others)
            raise self.unsupported(
                f"take {flags} on {OPENAI_HOST}",
                "it takes --language (not with --task translate), --initial-prompt, one "
                "--temperature and --word-timestamps; self-hosted OpenAI-compatible servers "
                "such as the embedded one take the rest",
            )

    def check_upload_size(self, path: str | os.PathLike[str], size: int) -> None:
        if self.official() and size > OPENAI_MAX_BYTES:
            raise UsageError(
                f"{Path(path).name} is {human_bytes(size)}, more than the "
                f"{human_bytes(OPENAI_MAX_BYTES)} {OPENAI_HOST} takes in one request",
                hint="compress or cut it (e.g. `ffmpeg -i IN -ac 1 -b:a 32k OUT.mp3`), or "
                "transcribe it on a server without that limit (`--profile local`)",
            )

    def must_download(self, url: str) -> bool:
        return True  # the file goes in the request

    def submit(self, request: Submission) -> JobInfo:
        file, size = self.inline_file(request, "the file goes in the request: download it first")
        task = request.params.get("task") or "transcribe"
        stream = request.on_progress is not None and task == "transcribe"
        boundary = uuid.uuid4().hex
        fields = self.fields(request, stream)

        def open_body() -> MultipartBody:
            if request.on_upload_progress is not None:
                request.on_upload_progress(0, size)
            reader = CountingReader(file.open("rb"), size, request.on_upload_progress)
            return MultipartBody(fields, "file", file.name, reader, boundary)

        path = TRANSLATIONS_PATH if task == "translate" else TRANSCRIPTIONS_PATH
        try:
            resp = self.transport.http.request(
                "POST",
                path,
                body=open_body,
                headers={
                    "Content-Type": f"multipart/form-data; boundary={boundary}",
                    "Accept": "text/event-stream" if stream else "application/json",
                },
                idempotent=True,  # a 429 or 503 did no work: the openai SDK retries them too
                stream=True,
                read_timeout=READ_TIMEOUT,
            )
        except WhisperCliError as exc:
            if exc.code in JOB_ENDED_CODES:  # the job ran and did not succeed: exit 3
                raise JobFailedError(exc.reply or exc.message) from None
            if exc.status == 413:
                exc.hint = "the server's upload limit: compress or cut the file, or raise the limit"
            raise
        job_id = _job_id(resp)
        with resp:
            if stream and resp.headers.get("Content-Type", "").startswith("text/event-stream"):
                assert request.on_progress is not None
                result = self._read_stream(resp, job_id, request.on_progress)
            else:
                result = self._read_body(resp)
        return JobInfo(id=job_id, status="success", model=request.model, result=result)

    def fields(self, request: Submission, stream: bool) -> list[tuple[str, str]]:
        """The form's text fields (the file part follows them, as the SDK sends it)."""
        params = dict(request.params)
        task = params.pop("task", None) or "transcribe"
        words = bool(params.pop("word_timestamps", False))
        model = request.model or self.default_model
        text_only = stream or model.startswith("gpt-")
        fields = [("model", model)]
        fields.append(("response_format", "json" if text_only else "verbose_json"))
        if not text_only:
            fields += [("timestamp_granularities[]", "segment")]
            fields += [("timestamp_granularities[]", "word")] if words else []
        if stream:
            fields.append(("stream", "true"))
        if task == "transcribe" and params.get("language"):
            fields.append(("language", str(params.pop("language"))))
        if params.get("initial_prompt"):
            fields.append(("prompt", str(params.pop("initial_prompt"))))
        for name, value in params.items():
            fields.append((name, _form_value(value)))
        return fields

    def _read_body(self, resp: requests.Response) -> Result:
        try:
            body = resp.json()
        except (ValueError, requests.RequestException):
            raise WhisperCliError(
                f"the server at {self.transport.url} answered something that is not JSON",
                hint="check the profile's url: it must be an OpenAI-compatible base URL "
                "ending in /v1",
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise WhisperCliError(f"the server at {self.transport.url} answered no text")
        return result_of(body)

    def _read_stream(self, resp: requests.Response, job_id: str, report: JobCallback) -> Result:
        """Follow the server-sent events to ``transcript.text.done``, reporting the segments
        so far after each event."""
        segments: list[Segment] = []
        keys: list[Any] = []
        try:
            for data in sse_data(resp.iter_content(chunk_size=None)):
                if data.strip() == "[DONE]":
                    break
                event = _event(data)
                kind = event.get("type")
                if kind == "transcript.text.done":
                    text = event.get("text")
                    joined = "".join(s.text for s in segments)
                    return Result(text=text if isinstance(text, str) else joined, segments=segments)
                if kind == "transcript.text.delta":
                    _add_delta(
                        segments, keys, str(event.get("delta") or ""), event.get("segment_id")
                    )
                elif kind == "transcript.text.segment":
                    _set_segment(segments, keys, event)
                report(JobInfo(id=job_id, status="processing", partial_segments=list(segments)))
        except requests.RequestException:
            raise UnreachableError(
                f"the stream from {self.transport.url} broke off before the transcript was done",
                hint="the work is lost: transcribe the file again",
            ) from None
        raise WhisperCliError(
            f"the stream from {self.transport.url} ended before transcript.text.done",
            hint="the work is lost: transcribe the file again",
        )

    def upload(self, path: str | os.PathLike[str], on_progress: ProgressCallback | None) -> str:
        raise self.no_jobs("take an upload on its own")

    def poll(self, job: Job, wait: float | None = None, until_done: bool = False) -> JobInfo:
        """A job's answer came with its submit: there is nothing to ask again."""
        if job.info is not None and job.info.terminal:
            return job.info
        raise self.no_jobs("look a job up")

    def find(self, job_id: str) -> JobInfo:
        raise self.no_jobs("look a job up")

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[JobInfo]:
        raise self.no_jobs("list jobs")

    def cancel(self, job_id: str) -> JobInfo:
        raise self.no_jobs("cancel a job")

    def delete(self, job_id: str) -> None:
        raise self.no_jobs("delete a job")


def _job_id(resp: requests.Response) -> str:
    """What names the job: the server's ``x-request-id`` (the embedded server's job id,
    OpenAI's request id) when it is a plausible id, else a local one (nothing looks it up)."""
    given = resp.headers.get("x-request-id", "")
    return given if JOB_ID_RE.fullmatch(given) else f"openai-{uuid.uuid4().hex}"


def _form_value(value: Any) -> str:
    """A Whisper parameter as a form field: booleans as true/false (as the SDK sends them),
    lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def sse_data(chunks: Iterator[bytes]) -> Iterator[str]:
    """The ``data`` of each server-sent event (lines joined), comments and other fields skipped."""
    buffer, data = b"", list[str]()
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", "replace")
            if not line:
                if data:
                    yield "\n".join(data)
                data = []
            elif line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
    if data:
        yield "\n".join(data)


def _event(data: str) -> dict[str, Any]:
    """One event's JSON; an ``error`` in it is the job's failure (exit 3)."""
    try:
        event = json.loads(data)
    except ValueError:
        raise WhisperCliError(f"a server-sent event is not JSON: {data[:80]!r}") from None
    if not isinstance(event, dict):
        return {}
    error = event.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise JobFailedError(f"the transcription failed: {message or 'no reason given'}")
    return event


def _add_delta(segments: list[Segment], keys: list[Any], delta: str, key: Any) -> None:
    """A delta continues the current segment unless it names another one."""
    if not segments or (key is not None and key != keys[-1]):
        segments.append(Segment(len(segments), 0.0, 0.0, ""))
        keys.append(key)
    segments[-1].text += delta


def _set_segment(segments: list[Segment], keys: list[Any], event: dict[str, Any]) -> None:
    """A diarized segment's times and speaker (``transcript.text.segment``)."""
    known = Segment.from_dict({**event, "id": 0})
    if event.get("id") in keys:
        segment = segments[keys.index(event.get("id"))]
    else:
        segment = Segment(len(segments), 0.0, 0.0, "")
        segments.append(segment)
        keys.append(event.get("id"))
    segment.start, segment.end, segment.text = known.start, known.end, known.text
    if event.get("speaker") is not None:
        segment.extra["speaker"] = event["speaker"]


def result_of(body: dict[str, Any]) -> Result:
    """A ``json`` or ``verbose_json`` answer; top-level ``words`` go back into their segments
    (each with its leading space, as Whisper's own words have it)."""
    result = Result.from_dict(body)
    words = result.extra.pop("words", None)
    if not isinstance(words, list) or not result.segments:
        return result
    index, segments = 0, result.segments
    for word in words:
        if not isinstance(word, dict) or not isinstance(word.get("word"), str):
            continue
        start, end = float(word.get("start") or 0.0), float(word.get("end") or 0.0)
        while index + 1 < len(segments) and (start + end) / 2 >= segments[index + 1].start:
            index += 1  # the last segment that starts before the word's middle
        entry = {"word": " " + word["word"].strip(), "start": start, "end": end}
        segments[index].extra.setdefault("words", []).append(entry)
    return result


BACKEND = OpenAIBackend
