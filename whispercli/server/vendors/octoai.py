"""OctoAI Whisper endpoint shapes: ``POST /predict`` (async with ``X-OctoAI-Async: 1``).

A request is ``{"audio": <base64>, ...Whisper params}``; the async answer is
``{"response_id", "poll_url"}``; a poll answers ``pending|running|completed`` (with
``response_url`` once completed); the result carries ``response.text``,
``response.segments[].text`` and ``transcription``. OctoAI's SDK knows no failed state, so a
failed or cancelled job answers an HTTP error on poll (:data:`ENDED_BADLY`), which it raises.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

ASYNC_HEADER = "X-OctoAI-Async"
STATUS = {
    "accepted": "pending",
    "pending": "pending",
    "processing": "running",
    "success": "completed",
}
ENDED_BADLY = {"failed": "job_failed", "cancelled": "job_cancelled"}
"""The error (code of ``errors.ERRORS``: 422, 410) that a poll, a response or a synchronous
predict answers when the job failed or was cancelled."""


class OctoError(ValueError):
    """A predict body the server refuses; the message names the field."""


def is_async(header: str | None) -> bool:
    return header is not None and header.strip().lower() in ("1", "true", "yes")


def parse_predict(body: Any) -> tuple[bytes, dict[str, Any]]:
    """``(audio bytes, Whisper params)`` of a predict body; the params are validated later."""
    if not isinstance(body, dict):
        raise OctoError("the body must be a JSON object with 'audio' (base64) and Whisper params")
    params = dict(body)
    audio = params.pop("audio", None)
    if not isinstance(audio, str) or not audio:
        raise OctoError("'audio' must be the audio file as a non-empty base64 string")
    if audio.startswith("data:") and "," in audio:  # a data: URL
        audio = audio.split(",", 1)[1]
    try:
        data = base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise OctoError("'audio' is not valid base64") from None
    if not data:
        raise OctoError("'audio' decodes to no bytes")
    return data, params


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
