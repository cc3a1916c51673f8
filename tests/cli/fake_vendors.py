"""Small loopback fakes of Eden AI's v2 async speech-to-text and OctoAI's async inference,
following their documented request and answer shapes (shared/notes/vendor-protocols.md).

Eden: three vendors. ``amazon`` hears two speakers, ``deepgram`` one, ``google`` always fails;
a job answers ``processing`` to its first two polls and ``finished`` after. OctoAI: a job is
``pending``, then ``running``, then ``completed``; audio starting with ``FAIL`` fails (the poll
answers 422, as the embedded server's OctoAI router does).
"""

from __future__ import annotations

import base64
import http.server
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from support.net import serve_http

KEY = "fake-vendor-key"
EDEN_BASE = "/v2/audio/speech_to_text_async"

# (word, start, end, speaker) for the two-speaker vendor
TWO_SPEAKERS = [
    ("Hello", 0.0, 0.4, 1),
    ("there.", 0.45, 0.9, 1),
    ("How", 1.0, 1.2, 1),
    ("are", 1.25, 1.4, 1),
    ("you?", 1.45, 1.9, 1),
    ("Fine,", 2.5, 2.9, 2),
    ("thanks.", 2.95, 3.5, 2),
]
ONE_SPEAKER_TEXT = "Hello there how are you fine thanks"


def _entries(words: list[tuple[str, float, float, int]]) -> list[dict[str, Any]]:
    return [
        {
            "segment": w,
            "start_time": str(start),
            "end_time": str(end),
            "speaker": speaker,
            "confidence": 0.9,
        }
        for w, start, end, speaker in words
    ]


def _vendor_result(name: str, public_id: str) -> dict[str, Any]:
    if name == "google":
        return {
            "text": "",
            "diarization": {"total_speakers": 0, "entries": [], "error_message": "quota"},
            "id": public_id,
            "final_status": "fail",
            "error": {"type": "ProviderError", "message": "google: quota exceeded"},
        }
    words = (
        TWO_SPEAKERS
        if name == "amazon"
        else [(w, i * 0.5, i * 0.5 + 0.4, 1) for i, w in enumerate(ONE_SPEAKER_TEXT.split())]
    )
    return {
        "text": " ".join(w for w, *_ in words),
        "diarization": {
            "total_speakers": len({w[3] for w in words}),
            "entries": _entries(words),
            "error_message": None,
        },
        "id": public_id,
        "final_status": "sucess",  # sic: Eden's v2 schema
        "error": None,
    }


@dataclass
class Fake:
    url: str = ""
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    launches: list[dict[str, Any]] = field(default_factory=list)
    """Eden launches: form fields (or JSON), plus ``file`` bytes."""
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletes: int = 0
    predicts: list[dict[str, Any]] = field(default_factory=list)


VENDORS = ("amazon", "deepgram", "google")


def _finished(job: dict[str, Any]) -> bool:
    """An Eden job answers ``processing`` to its first two polls, ``finished`` from the third."""
    return bool(job["polls"] >= 3)


class _Handler(http.server.BaseHTTPRequestHandler):
    fake: Fake
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {KEY}":
            return True
        self._send(401, {"error": {"type": "authentication", "message": "Invalid API key"}})
        return False

    def _record(self) -> None:
        self.fake.requests.append((self.command, self.path, dict(self.headers.items())))

    # -- routing --------------------------------------------------------------------------

    def do_POST(self) -> None:
        self._record()
        body = self._body()
        if not self._authorized():
            return
        path = self.path.rstrip("/")
        if path == EDEN_BASE:
            self._eden_launch(body)
        elif path == "/predict":
            self._octo_predict(body)
        else:
            self._send(404, {"details": "Not Found"})

    def do_GET(self) -> None:
        self._record()
        if not self._authorized():
            return
        path = self.path.split("?")[0].rstrip("/")
        if path == EDEN_BASE:
            self._send(200, {"jobs": [self._eden_row(i) for i in self.fake.jobs]})
        elif path.startswith(EDEN_BASE + "/"):
            self._eden_get(path.rsplit("/", 1)[1])
        elif path.startswith("/octo/futures/"):
            self._octo_poll(path.rsplit("/", 1)[1])
        elif path.startswith("/octo/responses/"):
            job = self.fake.jobs[path.rsplit("/", 1)[1]]
            text = "octo hears you"
            self._send(
                200,
                {
                    "response": {
                        "text": f" {text}",
                        "segments": [{"id": 0, "start": 0.0, "end": 1.5, "text": f" {text}"}],
                        "language": job.get("language", "en"),
                    },
                    "transcription": text,
                },
            )
        else:
            self._send(404, {"details": "Not Found"})

    def do_DELETE(self) -> None:
        self._record()
        if not self._authorized():
            return
        if self.path.rstrip("/") != EDEN_BASE:
            self._send(405, {"details": "Method Not Allowed"})
            return
        self.fake.deletes += 1
        for public_id in [i for i, j in self.fake.jobs.items() if _finished(j)]:
            del self.fake.jobs[public_id]
        self._send(204)

    # -- Eden AI --------------------------------------------------------------------------

    def _eden_launch(self, body: bytes) -> None:
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            fields: dict[str, Any] = {}
            for part in message.iter_parts():
                name = str(part.get_param("name", header="content-disposition"))
                payload = bytes(part.get_payload(decode=True))
                fields[name] = payload if part.get_filename() else payload.decode()
        else:
            fields = json.loads(body)
        self.fake.launches.append(fields)
        providers = [p.strip() for p in str(fields.get("providers", "")).split(",") if p]
        unknown = [p for p in providers if p not in VENDORS]
        if not providers or unknown:
            problem = f"Invalid provider: {unknown[0]!r}" if unknown else "required"
            self._send(
                400, {"error": {"type": "Invalid request", "message": {"providers": [problem]}}}
            )
            return
        if "file" not in fields and "file_url" not in fields:
            self._send(
                400, {"error": {"type": "Invalid request", "message": {"file": ["required"]}}}
            )
            return
        public_id = str(uuid.uuid4())
        self.fake.jobs[public_id] = {"providers": providers, "polls": 0}
        self._send(200, {"public_id": public_id})

    def _eden_row(self, public_id: str) -> dict[str, Any]:
        job = self.fake.jobs[public_id]
        done = _finished(job)
        return {
            "providers": ",".join(job["providers"]),
            "nb": len(job["providers"]),
            "nb_ok": sum(p != "google" for p in job["providers"]) if done else 0,
            "public_id": public_id,
            "state": "finished" if done else "processing",
            "created_at": "2026-12-01T20:00:00Z",
        }

    def _eden_get(self, public_id: str) -> None:
        job = self.fake.jobs.get(public_id)
        if job is None:
            self._send(404, {"details": "Not Found"})
            return
        job["polls"] += 1
        if not _finished(job):
            self._send(
                200, {"public_id": public_id, "status": "processing", "error": None, "results": {}}
            )
            return
        results = {p: _vendor_result(p, public_id) for p in job["providers"]}
        failed = all(r["final_status"] == "fail" for r in results.values())
        self._send(
            200,
            {
                "public_id": public_id,
                "status": "failed" if failed else "finished",
                "error": {"type": "ProviderError", "message": "all failed"} if failed else None,
                "results": results,
            },
        )

    # -- OctoAI ---------------------------------------------------------------------------

    def _octo_predict(self, body: bytes) -> None:
        if self.headers.get("X-OctoAI-Async") != "1":
            self._send(400, {"error": {"message": "this fake is async only"}})
            return
        request = json.loads(body)
        audio = base64.b64decode(request.pop("audio"))
        self.fake.predicts.append({"audio": audio, **request})
        response_id = uuid.uuid4().hex
        self.fake.jobs[response_id] = {
            "polls": 0,
            "fail": audio.startswith(b"FAIL"),
            "language": request.get("language"),
        }
        self._send(
            201,
            {"response_id": response_id, "poll_url": f"{self.fake.url}/octo/futures/{response_id}"},
        )

    def _octo_poll(self, response_id: str) -> None:
        job = self.fake.jobs.get(response_id)
        if job is None:
            self._send(404, {"error": {"message": "no such future"}})
            return
        job["polls"] += 1
        if job["polls"] >= 3 and job["fail"]:
            self._send(422, {"error": {"code": "job_failed", "message": "bad audio"}})
            return
        status = ("pending", "running", "completed")[min(job["polls"], 3) - 1]
        body = {"response_id": response_id, "status": status}
        if status == "completed":
            body["response_url"] = f"{self.fake.url}/octo/responses/{response_id}"
        self._send(200, body)


@contextmanager
def serve() -> Iterator[Fake]:
    """Both fakes on one loopback port (Eden under /v2, OctoAI at /predict)."""
    fake = Fake()
    with serve_http(type("Handler", (_Handler,), {"fake": fake})) as url:
        fake.url = url
        yield fake
