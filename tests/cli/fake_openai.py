"""A loopback fake of OpenAI's audio API, following its documented shapes and quirks
(shared/notes/openai-audio-api.md): ``POST /v1/audio/transcriptions`` and
``/v1/audio/translations`` (multipart), answered in ``json`` or ``verbose_json``.

Quirks kept: ``words`` only when ``timestamp_granularities[]`` asks for them; ``whisper-1``
ignores ``stream`` (it answers its usual body), ``gpt-4o-*`` models stream word pieces without a
``segment_id`` and refuse ``verbose_json``; errors are ``{"error": {"message", "type", "param",
"code"}}``; a file larger than ``Fake.max_bytes`` is a 413 (OpenAI's is 25 MiB); a file starting
with ``RATE`` gets one 429 with ``Retry-After: 1`` first; a file starting with ``SLOW`` is
answered after ``Fake.slow_seconds``; a gpt-4o stream of a file starting with ``FAIL`` ends
with an ``error`` event.
"""

from __future__ import annotations

import http.server
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from support.net import serve_http

KEY = "fake-openai-key"
SEGMENTS = [(0.0, 2.0, " Hello there."), (2.5, 4.0, " How are you?")]
WORDS = [
    ("Hello", 0.1, 0.8),
    ("there.", 0.9, 1.9),
    ("How", 2.6, 2.9),
    ("are", 3.0, 3.3),
    ("you?", 3.4, 3.9),
]
"""Timed inside their segments, so that word-timed subtitle cues differ from segment ones."""
TEXT = "Hello there. How are you?"


@dataclass
class Fake:
    url: str = ""
    posts: list[dict[str, Any]] = field(default_factory=list)
    """Each POST: ``path``, ``fields`` (name, value) pairs in order, ``file`` bytes, headers."""
    requests: int = 0
    max_bytes: int = 25 * 1024 * 1024
    slow_seconds: float = 5.0
    rate_limited: set[bytes] = field(default_factory=set)


def body_of(fields: dict[str, list[str]], task: str) -> dict[str, Any]:
    """A successful answer in ``json`` or ``verbose_json`` (what whispercli asks for)."""
    fmt = fields.get("response_format", ["json"])[0]
    if fmt == "json":
        return {"text": TEXT, "usage": {"type": "duration", "seconds": 4}}
    body: dict[str, Any] = {
        "task": task,
        "language": "english",
        "duration": 4.0,
        "text": " " + TEXT,
        "segments": [
            {
                "id": i,
                "seek": 0,
                "start": a,
                "end": b,
                "text": t,
                "tokens": [50364 + i],
                "temperature": 0.0,
                "avg_logprob": -0.2,
                "compression_ratio": 0.9,
                "no_speech_prob": 0.01,
            }
            for i, (a, b, t) in enumerate(SEGMENTS)
        ],
        "usage": {"type": "duration", "seconds": 4},
    }  # fmt: skip
    if "word" in fields.get("timestamp_granularities[]", []):
        body["words"] = [{"word": w, "start": a, "end": b} for w, a, b in WORDS]
    return body


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: Fake
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any, **headers: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{len(self.fake.posts)}")
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def _error(
        self, status: int, message: str, kind: str, code: str | None, **headers: str
    ) -> None:
        body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        self._send(status, body, **headers)

    def do_GET(self) -> None:
        self.fake.requests += 1
        self._error(404, "Invalid URL (GET /v1/...)", "invalid_request_error", None)

    def do_POST(self) -> None:
        self.fake.requests += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self._error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
            return
        task = {"/v1/audio/transcriptions": "transcribe", "/v1/audio/translations": "translate"}
        if self.path not in task:
            self._error(404, f"Invalid URL (POST {self.path})", "invalid_request_error", None)
            return
        pairs, audio = self._form(body)
        self.fake.posts.append(
            {"path": self.path, "fields": pairs, "file": audio, "headers": dict(self.headers)}
        )
        self._answer(pairs, audio, task[self.path])

    def _form(self, body: bytes) -> tuple[list[tuple[str, str]], bytes]:
        ctype = self.headers.get("Content-Type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {ctype}\r\n\r\n".encode() + body
        )
        pairs, audio = [], b""
        for part in message.iter_parts():
            name = str(part.get_param("name", header="content-disposition"))
            payload = bytes(part.get_payload(decode=True))
            if part.get_filename():
                audio = payload
            else:
                pairs.append((name, payload.decode()))
        return pairs, audio

    def _answer(self, pairs: list[tuple[str, str]], audio: bytes, task: str) -> None:
        fields: dict[str, list[str]] = {}
        for name, value in pairs:
            fields.setdefault(name, []).append(value)
        model = fields.get("model", [""])[0]
        if len(audio) > self.fake.max_bytes:
            message = f"Maximum content size limit ({self.fake.max_bytes}) exceeded"
            self._error(413, message, "server_error", None)
            return
        if audio.startswith(b"RATE") and audio not in self.fake.rate_limited:
            self.fake.rate_limited.add(audio)
            self._error(429, "Rate limit reached for requests", "requests", "rate_limit_exceeded",
                        Retry_After="1")  # fmt: skip
            return
        if audio.startswith(b"SLOW"):
            time.sleep(self.fake.slow_seconds)
        gpt4o = model.startswith("gpt-4o")
        if gpt4o and fields.get("response_format", ["json"])[0] == "verbose_json":
            message = f"response_format 'verbose_json' is not compatible with model '{model}'"
            self._error(400, message, "invalid_request_error", "unsupported_value")
            return
        if gpt4o and fields.get("stream") == ["true"]:
            self._stream(failing=audio.startswith(b"FAIL"))
            return
        self._send(200, body_of(fields, task))

    def _stream(self, failing: bool) -> None:
        """gpt-4o's stream: word pieces (no segment_id), then done (or an error); chunked, as
        OpenAI sends it."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pieces = ["Hello", " there.", " How", " are", " you?"]
        events = [{"type": "transcript.text.delta", "delta": p, "logprobs": None} for p in pieces]
        usage = {"type": "tokens", "input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
        events.append({"type": "transcript.text.done", "text": TEXT, "usage": usage})
        if failing:
            error = {"message": "The audio could not be decoded.", "type": "server_error"}
            events[2:] = [{"error": {**error, "param": None, "code": None}}]
        for event in events:
            data = f"data: {json.dumps(event)}\n\n".encode()
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")


@contextmanager
def serve() -> Iterator[Fake]:
    """The fake on a loopback port; its base URL for clients is ``fake.url + "/v1"``."""
    fake = Fake()
    handler = type("Handler", (_Handler,), {"fake": fake})
    with serve_http(handler) as url:
        fake.url = url
        yield fake
