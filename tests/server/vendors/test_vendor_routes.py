"""The Eden AI and OctoAI routes beyond their seeds: JSON launch with file_url, list, delete,
Eden's errors, Eden webhook options, OctoAI's synchronous predict and its large bodies."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from support.net import receiver, serve_http
from support.samples import SAMPLE_MP3, assert_sample
from support.servers import Server

EDEN = "/v2/audio/speech_to_text_async"
TIMEOUT = 30


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    """Serves the sample at /sample.mp3 on loopback (404 elsewhere, a redirect at /moved)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/sample.mp3":
                data = SAMPLE_MP3.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/sample.mp3")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    with serve_http(Handler) as url:
        yield url


def _eden_done(server: Server, public_id: str, path_end: str = "") -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        resp = requests.get(
            f"{server.url}{EDEN}/{public_id}{path_end}", headers=server.headers, timeout=TIMEOUT
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] != "processing":
            return body
        assert time.monotonic() < deadline
        time.sleep(0.3)


def test_eden_json_launch_with_file_url_list_and_delete(server: Server, file_server: str) -> None:
    launch = requests.post(
        server.url + EDEN + "/",
        json={
            "providers": "whisper,whisper/tiny",
            "file_url": file_server + "/sample.mp3",
            "language": "en",
            "show_original_response": True,
        },
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert launch.status_code == 200, launch.text
    public_id = launch.json()["public_id"]
    body = _eden_done(server, public_id, "/")
    assert body["status"] == "finished" and body["error"] is None
    assert set(body["results"]) == {"whisper", "whisper/tiny"}
    result = body["results"]["whisper/tiny"]
    assert_sample(result["text"])
    assert result["original_response"]["language"] == "en"
    words = result["diarization"]["entries"]
    assert len(words) > 20 and {w["speaker"] for w in words} == {1}
    assert float(words[0]["start_time"]) <= float(words[-1]["end_time"])
    # the same job is an ordinary job for the Tiyaro routes
    tiyaro = requests.get(
        f"{server.url}/v1/async/jobs/{public_id.replace('-', '')}",
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert tiyaro.status_code == 200 and tiyaro.json()["status"] == "success"

    listed = requests.get(server.url + EDEN, headers=server.headers, timeout=TIMEOUT).json()
    [row] = [job for job in listed["jobs"] if job["public_id"] == public_id]
    assert row["providers"] == "whisper,whisper/tiny" and row["state"] == "finished"
    assert (row["nb"], row["nb_ok"]) == (2, 2) and row["created_at"]

    gone = requests.delete(server.url + EDEN, headers=server.headers, timeout=TIMEOUT)
    assert gone.status_code == 204
    missing = requests.get(f"{server.url}{EDEN}/{public_id}", headers=server.headers, timeout=10)
    assert missing.status_code == 404 and missing.json() == {"details": "Not Found"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"providers": "amazon", "file_url": "{files}/sample.mp3"}, "providers"),
        ({"providers": "whisper/huge", "file_url": "{files}/sample.mp3"}, "providers"),
        ({"providers": "whisper", "file_url": "{files}/missing.mp3"}, "file_url"),
        ({"providers": "whisper", "file_url": "{files}/moved"}, "file_url"),  # no redirects
        ({"providers": "whisper", "file_url": "{files}/a", "language": "fr"}, "language"),
        ({"providers": "whisper"}, "file"),
    ],
)
def test_eden_errors_name_the_field(
    server: Server, file_server: str, fields: dict[str, str], param: str
) -> None:
    body = {k: v.replace("{files}", file_server) for k, v in fields.items()}
    resp = requests.post(server.url + EDEN, json=body, headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "Invalid request" and list(error["message"]) == [param]
    if param == "providers" and body["providers"] == "amazon":
        assert "amazon" in error["message"]["providers"][0]


def test_eden_webhook_options(server: Server) -> None:
    with receiver() as rx:
        ids = []
        for send_data in ("true", "false"):
            resp = requests.post(
                server.url + EDEN,
                data={
                    "providers": "whisper",
                    "webhook_receiver": rx.url,
                    "users_webhook_parameters": '{"ticket": 42}',
                    "send_webhook_data": send_data,
                },
                files={"file": ("audio.mp3", SAMPLE_MP3.read_bytes(), "audio/mpeg")},
                headers=server.headers,
                timeout=TIMEOUT,
            )
            assert resp.status_code == 200, resp.text
            ids.append(resp.json()["public_id"])
        assert rx.wait(2, 120)
    bodies = {b["public_id"]: b for b in (json.loads(r.body) for r in rx.received)}
    with_data, without = bodies[ids[0]], bodies[ids[1]]
    assert with_data["users_webhook_parameters"] == without["users_webhook_parameters"]
    assert with_data["users_webhook_parameters"] == {"ticket": 42}
    assert with_data["results"]["whisper"]["text"] and "results" not in without
    assert without["status"] == "finished"


def test_octoai_synchronous_predict(server: Server) -> None:
    audio = base64.b64encode(SAMPLE_MP3.read_bytes()).decode()
    resp = requests.post(
        server.url + "/predict",
        json={"audio": audio, "language": "en", "task": "transcribe", "beam_size": 2},
        headers=server.headers,
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["transcription"] == body["response"]["text"]
    assert_sample(body["transcription"])
    assert_sample(" ".join(segment["text"] for segment in body["response"]["segments"]))
    bad = requests.post(
        server.url + "/predict",
        json={"audio": audio, "temprature": 0},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert bad.status_code == 400 and "temprature" in bad.json()["error"]["message"]


def test_octoai_takes_more_than_its_old_10_mb_and_fails_a_bad_job_on_poll(
    server: Server,
) -> None:
    junk = base64.b64encode(b"not audio at all " * 700_000).decode()  # 12 MB, 16 MB in base64
    resp = requests.post(
        server.url + "/predict",
        json={"audio": junk},
        headers={**server.headers, "X-OctoAI-Async": "1"},
        timeout=120,
    )
    assert resp.status_code == 200, resp.text
    future = resp.json()
    assert set(future) >= {"response_id", "poll_url"}
    deadline = time.monotonic() + 120
    while True:
        poll = requests.get(future["poll_url"], headers=server.headers, timeout=TIMEOUT)
        if poll.status_code != 200:
            break
        assert poll.json()["status"] in ("pending", "running")
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert poll.status_code == 422, poll.text
    assert poll.json()["error"]["code"] == "job_failed"
    response_url = future["poll_url"] + "/response"
    assert requests.get(response_url, headers=server.headers, timeout=10).status_code == 422
