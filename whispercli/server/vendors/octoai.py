"""OctoAI Whisper endpoint shapes: ``POST /predict`` (async with ``X-OctoAI-Async: 1``).

A request is ``{"audio": <base64>, ...Whisper params}``; the async answer is
``{"response_id", "poll_url"}``; a poll answers ``pending|running|completed`` (with
``response_url`` once completed); the result carries ``response.text``,
``response.segments[].text`` and ``transcription``. OctoAI's SDK knows no failed state, so a
failed or cancelled job answers an HTTP error on poll (:data:`ENDED_BADLY`), which it raises.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any

from whispercli.server.vendors import jsonbody

ASYNC_HEADER = "X-OctoAI-Async"
STATUS = {
    "accepted": "pending",
    "pending": "pending",
    "processing": "running",
    "success": "completed",
}
MAX_FIELDS_BYTES = 64 * 1024
"""A predict body's fields other than ``audio`` (the Whisper params) take at most this."""
_DATA_PREFIX = b"data:"
_MAX_DATA_HEADER = 1024
ENDED_BADLY = {"failed": "job_failed", "cancelled": "job_cancelled"}
"""The error (code of ``errors.ERRORS``: 422, 410) that a poll, a response or a synchronous
predict answers when the job failed or was cancelled."""


class OctoError(ValueError):
    """A predict body the server refuses; the message names the field."""


def is_async(header: str | None) -> bool:
    return header is not None and header.strip().lower() in ("1", "true", "yes")


class PredictReader:
    """A predict body read as it arrives: :meth:`feed` returns the audio bytes decoded from
    the base64 ``audio`` field so far (memory stays flat whatever its size), :meth:`finish`
    the last of them; then :attr:`params` holds the other fields (the Whisper params,
    validated later), which may take :data:`MAX_FIELDS_BYTES` in all."""

    def __init__(self) -> None:
        self._json = jsonbody.FieldStreamer("audio", MAX_FIELDS_BYTES)
        self._base64 = _Base64Stream()
        self.params: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> bytes:
        try:
            return self._base64.feed(self._json.feed(chunk))
        except jsonbody.JsonBodyError as exc:
            raise OctoError(str(exc)) from None

    def finish(self) -> bytes:
        try:
            fields = self._json.finish()
        except jsonbody.JsonBodyError as exc:
            raise OctoError(str(exc)) from None
        if not self._json.seen:
            raise OctoError("'audio' must be the audio file as a non-empty base64 string")
        tail = self._base64.finish()
        fields.pop("audio")
        self.params = fields
        return tail


class _Base64Stream:
    """Base64 text (optionally a ``data:...;base64,`` URL) decoded as it arrives."""

    def __init__(self) -> None:
        self._head: bytearray | None = bytearray()  # the start, until a data: prefix is known
        self._carry = b""
        self._padded = False
        self.size = 0

    def feed(self, text: bytes) -> bytes:
        if self._head is not None:
            self._head += text
            if len(self._head) < len(_DATA_PREFIX) or (
                self._head.startswith(_DATA_PREFIX) and b"," not in self._head
            ):
                if len(self._head) > _MAX_DATA_HEADER:
                    raise OctoError("'audio' is not valid base64")
                return b""
            text = bytes(self._head)
            if text.startswith(_DATA_PREFIX):
                text = text.split(b",", 1)[1]
            self._head = None
        text = self._carry + text
        cut = len(text) - len(text) % 4
        self._carry = text[cut:]
        return self._decode(text[:cut])

    def finish(self) -> bytes:
        if self._head is not None:  # a short value: all of it was held back
            head, self._head = bytes(self._head), None
            if head.startswith(_DATA_PREFIX) and b"," in head:
                head = head.split(b",", 1)[1]
            data = self.feed(head)
        else:
            data = b""
        if self._carry:
            raise OctoError("'audio' is not valid base64")
        if self.size == 0:
            raise OctoError("'audio' must be the audio file as a non-empty base64 string")
        return data

    def _decode(self, text: bytes) -> bytes:
        if not text:
            return b""
        if self._padded:
            raise OctoError("'audio' is not valid base64")
        try:
            data = binascii.a2b_base64(text, strict_mode=True)
        except binascii.Error:
            raise OctoError("'audio' is not valid base64") from None
        self._padded = text.endswith(b"=")
        self.size += len(data)
        return data


def accepted_body(response_id: str, poll_url: str) -> dict[str, Any]:
    return {"response_id": response_id, "poll_url": poll_url, "status": "pending"}


def poll_body(
    response_id: str, status: str, poll_url: str, response_url: str, created_at: str | None
) -> dict[str, Any]:
    """A poll of a job that has not failed (the router answers :data:`ENDED_BADLY`)."""
    body: dict[str, Any] = {
        "response_id": response_id,
        "status": STATUS[status],
        "poll_url": poll_url,
        "created_at": created_at,
    }
    if status == "success":
        body["response_url"] = response_url
    return body


def result_body(result: Mapping[str, Any]) -> dict[str, Any]:
    text = str(result.get("text", "")).strip()
    segments = [
        {**segment, "text": str(segment.get("text", "")).strip()}
        for segment in result.get("segments") or []
    ]
    response = {**result, "text": text, "segments": segments}
    return {"response": response, "transcription": text}
