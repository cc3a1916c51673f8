"""http.py and client.py against a scripted stub HTTP server: retries only where safe,
Retry-After, error mapping, streaming uploads, polling and long-polling.

(End-to-end behaviour against the real server is in tests/cli; this stub injects the faults
the real server does not produce on demand.)"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from support.net import serve_http

import whispercli.client as client_mod
import whispercli.launcher as launcher
from whispercli.client import Client, Job
from whispercli.errors import (
    AuthError,
    JobFailedError,
    NotFoundError,
    UnreachableError,
    WaitTimeoutError,
    WhisperCliError,
    seconds_text,
)
from whispercli.http import redact_url

Reply = tuple[int, dict[str, str], Any]


class Stub:
    """Replies from a script per (method, path); the last reply of a list repeats."""

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], list[Reply]] = {}
        self.seen: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                digest, remaining = hashlib.sha256(), length
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    digest.update(chunk)
                    remaining -= len(chunk)
                stub.seen.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": parse_qs(parts.query),
                        "headers": dict(self.headers),
                        "length": length,
                        "sha256": digest.hexdigest(),
                    }
                )
                replies = stub.script.get((self.command, parts.path)) or [
                    (404, {}, {"detail": "Not Found"})
                ]
                status, headers, body = replies.pop(0) if len(replies) > 1 else replies[0]
                if status == 0:  # drop the connection without an answer
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                raw = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.handler = Handler
        self.url = ""

    def on(self, method: str, path: str, *replies: Reply) -> None:
        self.script[(method, path)] = list(replies)

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        return [s for s in self.seen if s["method"] == method and s["path"] == path]


@pytest.fixture
def stub(isolated_env: dict[str, str]) -> Iterator[Stub]:
    s = Stub()
    with serve_http(s.handler) as s.url:
        yield s


def _client(stub: Stub) -> Client:
    return Client(url=stub.url, api_key="secret-key-xyz")


def job_body(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "j1", "status": status, "urls": {"GET": "/v1/async/jobs/j1?sig=abc"}, **extra}


def test_get_is_retried_after_retry_after(stub: Stub) -> None:
    stub.on("GET", "/v1/health", (503, {"Retry-After": "0"}, {}), (200, {}, {"longPoll": True}))
    assert _client(stub).health() == {"longPoll": True}
    assert len(stub.calls("GET", "/v1/health")) == 2


def test_post_without_idempotency_key_is_not_retried(stub: Stub) -> None:
    stub.on("POST", "/v1/async/jobs/j1/cancel", (503, {"Retry-After": "0"}, {}))
    with pytest.raises(WhisperCliError) as info:
        _client(stub).cancel("j1")
    assert info.value.status == 503
    assert len(stub.calls("POST", "/v1/async/jobs/j1/cancel")) == 1


def test_submit_sends_an_idempotency_key_and_is_retried_with_it(stub: Stub) -> None:
    path = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny"
    stub.on(
        "POST",
        path,
        (429, {"Retry-After": "0"}, {"error": {"code": "busy", "message": "busy"}}),
        (202, {}, {"response": job_body("accepted")}),
    )
    job = _client(stub).submit("http://elsewhere/upload", language="en", beam_size=None)
    assert job.id == "j1" and job.poll_url == "/v1/async/jobs/j1?sig=abc"
    first, second = stub.calls("POST", path)
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]
    assert first["query"] == {"serviceTier": ["cpuflex"]}


def test_upload_streams_with_length_progress_and_resends_whole_file(
    stub: Stub, tmp_path: Path
) -> None:
    size = 48 * 1024 * 1024
    audio = tmp_path / "big.wav"
    with audio.open("wb") as fh:
        fh.seek(size - 1)
        fh.write(b"\1")
    put = f"{stub.url}/v1/input/uploads/u1?expires=9&sig=s"
    stub.on("POST", "/v1/input/upload-url", (201, {}, {"uploadUrl": {"PUT": put}}))
    stub.on(
        "PUT", "/v1/input/uploads/u1", (503, {"Retry-After": "0"}, {}), (200, {}, {"size": size})
    )
    progress: list[tuple[int, int]] = []
    tracemalloc.start()
    try:
        url = _client(stub).upload(audio, on_progress=lambda s, t: progress.append((s, t)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert url == put
    assert peak < 8 * 1024 * 1024, peak  # flat: far below the 48 MiB file
    puts = stub.calls("PUT", "/v1/input/uploads/u1")
    want = hashlib.sha256(audio.read_bytes()).hexdigest()
    assert [p["length"] for p in puts] == [size, size]
    assert [p["sha256"] for p in puts] == [want, want]
    assert "Authorization" not in puts[0]["headers"]
    assert stub.calls("POST", "/v1/input/upload-url")[0]["query"] == {"extension": ["wav"]}
    assert progress[-1] == (size, size) and progress.count((0, size)) == 2


def test_error_mapping(stub: Stub) -> None:
    c = _client(stub)
    stub.on(
        "GET", "/v1/health", (401, {}, {"error": {"code": "unauthorized", "message": "bad key"}})
    )
    with pytest.raises(AuthError) as auth:
        c.health()
    assert "--api-key" in str(auth.value) and "secret-key-xyz" not in str(auth.value)
    stub.on("GET", "/v1/async/jobs", (200, {}, {"jobs": []}))
    with pytest.raises(NotFoundError):
        c.job("missing")
    stub.on(
        "POST",
        "/v1/async/jobs/j1/cancel",
        (409, {}, {"error": {"code": "finished", "message": "job j1 already finished"}}),
    )
    with pytest.raises(WhisperCliError, match="already finished"):
        c.cancel("j1")
    stub.on("DELETE", "/v1/async/jobs/j1", (500, {}, b"oops"))
    with pytest.raises(WhisperCliError, match="HTTP 500"):
        c.delete("j1")
    stub.on("GET", "/v1/async/jobs", (200, {}, b"<html>proxy</html>"))
    with pytest.raises(WhisperCliError, match="not JSON"):
        c.jobs()


def test_unreachable_names_the_url(isolated_env: dict[str, str], free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    with pytest.raises(UnreachableError, match=url) as info:
        Client(url=url, api_key="k").health()
    assert info.value.hint and "--url" in info.value.hint


def test_redact_url() -> None:
    assert redact_url("http://h/x?expires=1&sig=abc#f") == "http://h/x?expires=1&sig=REDACTED#f"


def test_wait_polls_with_backoff_without_long_poll(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "POLL_START", 0.05)
    result = {"text": "hi", "segments": [{"id": 0, "start": 0, "end": 1, "text": "hi"}]}
    stub.on(
        "GET",
        "/v1/async/jobs/j1",
        (200, {}, {"response": job_body("pending")}),
        (200, {}, job_body("processing", progress=0.5)),
        (200, {}, job_body("processing", progress=0.9)),
        (200, {}, job_body("success", result=result)),
    )
    job = _client(stub).job("j1", "/v1/async/jobs/j1?sig=abc")
    seen: list[str] = []
    assert job.wait(timeout=30, on_progress=lambda i: seen.append(i.status)).text == "hi"
    assert seen == ["pending", "processing", "processing", "success"]
    assert all("wait" not in c["query"] for c in stub.calls("GET", "/v1/async/jobs/j1"))
    assert job.result().text == "hi"


def _long_polled_job_that_fails(stub: Stub, first_status: str) -> Job:
    """A job on a server that offers long-poll: ``first_status``, then failed."""
    stub.on("GET", "/v1/health", (200, {}, {"longPoll": True}))
    stub.on(
        "GET",
        "/v1/async/jobs/j1",
        (200, {}, job_body(first_status)),
        (200, {}, job_body("failed", error="could not decode the upload")),
    )
    return _client(stub).job("j1", "/v1/async/jobs/j1?sig=abc")


def test_wait_long_polls_when_the_server_offers_it(stub: Stub) -> None:
    job = _long_polled_job_that_fails(stub, "pending")
    seen: list[str] = []
    with pytest.raises(JobFailedError, match="could not decode"):
        job.wait(on_progress=lambda info: seen.append(info.status))
    first, second = stub.calls("GET", "/v1/async/jobs/j1")
    # With progress to show: an immediate first poll, then long-polls woken by any change.
    assert "wait" not in first["query"] and second["query"]["wait"] == ["30"]
    assert "until" not in second["query"] and seen == ["pending", "failed"]


def test_a_quiet_wait_long_polls_until_done_from_the_first_request(stub: Stub) -> None:
    job = _long_polled_job_that_fails(stub, "processing")
    with pytest.raises(JobFailedError, match="could not decode"):
        job.wait()
    for call in stub.calls("GET", "/v1/async/jobs/j1"):
        assert call["query"]["wait"] == ["30"] and call["query"]["until"] == ["done"]


def test_wait_timeout(stub: Stub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_mod, "POLL_START", 0.05)
    stub.on("GET", "/v1/async/jobs/j1", (200, {}, job_body("processing")))
    job = _client(stub).job("j1", "/v1/async/jobs/j1?sig=abc")
    with pytest.raises(WaitTimeoutError, match=r"still processing after 0\.3 s"):
        job.wait(timeout=0.3)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.3, "0.3 s"),
        (0.5, "0.5 s"),
        (1.0, "1 s"),
        (2.25, "2.2 s"),
        (59.6, "60 s"),
        (4295.0, "4295 s"),
    ],
)
def test_messages_say_durations_one_way(seconds: float, said: str) -> None:
    assert seconds_text(seconds) == said


def test_a_sub_second_start_timeout_is_not_called_0_s(tmp_path: Path, free_port: int) -> None:
    """`server start --timeout 0.3` (launcher.wait_until_up) said "within 0 s"."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(UnreachableError, match=r"within 0\.3 s"):
            launcher.wait_until_up(f"http://127.0.0.1:{free_port}", proc, 0.3, tmp_path / "log")
    finally:
        proc.kill()
        proc.wait()


def test_an_answer_cut_short_is_asked_for_again_only_when_safe(stub: Stub) -> None:
    stub.on("GET", "/v1/async/jobs", (200, {}, b""), (200, {}, {"jobs": [job_body("pending")]}))
    assert [j.id for j in _client(stub).jobs()] == ["j1"]
    assert len(stub.calls("GET", "/v1/async/jobs")) == 2
    stub.on("POST", "/v1/async/jobs/j1/cancel", (200, {}, b""))
    with pytest.raises(WhisperCliError, match="not JSON"):
        _client(stub).cancel("j1")
    assert len(stub.calls("POST", "/v1/async/jobs/j1/cancel")) == 1


def test_wait_rides_out_a_server_that_drops_connections_for_a_while(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_mod, "POLL_START", 0.05)
    result = {"text": "back", "segments": []}
    drop: Reply = (0, {}, b"")
    stub.on(
        "GET",
        "/v1/async/jobs/j1",
        (200, {}, job_body("processing")),
        *[drop] * 6,  # two rounds of the core's own retries, then the wait loop's
        (200, {}, job_body("success", result=result)),
    )
    c = Client(url=stub.url, api_key="k")
    c.http.backoff = 0.01
    assert c.job("j1", "/v1/async/jobs/j1?sig=abc").wait(timeout=30).text == "back"
    assert len(stub.calls("GET", "/v1/async/jobs/j1")) == 8


def test_an_expired_poll_url_is_replaced_from_the_job_list(stub: Stub) -> None:
    stub.on(
        "GET", "/v1/async/jobs/j1", (403, {}, {"error": {"code": "expired", "message": "expired"}})
    )
    fresh = {**job_body("pending"), "urls": {"GET": "/v1/async/jobs/j1b?sig=new"}}
    stub.on("GET", "/v1/async/jobs", (200, {}, {"jobs": [fresh]}))
    stub.on("GET", "/v1/async/jobs/j1b", (200, {}, job_body("processing")))
    job = _client(stub).job("j1", "/v1/async/jobs/j1?sig=old")
    assert job.status() == "processing"
    assert job.poll_url == "/v1/async/jobs/j1b?sig=new"


def _eden_client(stub: Stub) -> Client:
    from dataclasses import replace

    from whispercli.config import resolve

    settings = replace(
        resolve(url=stub.url, api_key="k"), backend="edenai", providers=("amazon", "deepgram")
    )
    return Client(settings=settings)


def test_eden_multipart_launch_streams_once_and_is_not_retried(stub: Stub, tmp_path: Path) -> None:
    audio = tmp_path / "talk.mp3"
    audio.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    path = "/audio/speech_to_text_async/"
    stub.on("POST", path, (503, {"Retry-After": "0"}, {"error": {"message": "busy"}}))
    seen: list[tuple[int, int]] = []
    with pytest.raises(WhisperCliError) as info:
        _eden_client(stub).submit(audio, on_upload_progress=lambda s, t: seen.append((s, t)))
    assert info.value.status == 503 and "busy" in info.value.message
    [call] = stub.calls("POST", path)  # a multipart POST has no idempotency key: sent once
    headers = {k.lower(): v for k, v in call["headers"].items()}
    assert headers["content-type"].startswith("multipart/form-data; boundary=")
    assert 2**20 < call["length"] < 2**20 + 1024  # the file and a small envelope, streamed
    assert seen[0] == (0, 2**20) and seen[-1] == (2**20, 2**20)
