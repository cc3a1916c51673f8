"""Bad uploads fail their job with a readable error; bad requests get the documented 4xx."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest
import requests
from support.protocol import SUBMIT, TIMEOUT, submit, submit_raw, upload, upload_url, wait_done
from support.samples import SAMPLE_MP3
from support.servers import Server, ServerFactory


def _zero_second_wav(folder: Path) -> bytes:
    out = folder / "zero.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(out), "trim", "0", "0"],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("empty", "the uploaded file is empty"),
        ("text", "could not decode the upload as audio"),
        ("random", "could not decode the upload as audio"),
        ("truncated", "looks truncated"),
        ("header_only", "could not decode the upload as audio"),
        ("zero_seconds", "contains no audio"),
    ],
)
def test_bad_upload_fails_the_job_readably(
    server: Server, tmp_path: Path, name: str, expected: str
) -> None:
    sample = SAMPLE_MP3.read_bytes()
    data = {
        "empty": b"",
        "text": b"this is not audio at all\n" * 50,
        "random": bytes(range(256)) * 40,
        "truncated": sample[: len(sample) * 2 // 5],
        "header_only": sample[:300],
        "zero_seconds": _zero_second_wav(tmp_path) if name == "zero_seconds" else b"",
    }[name]
    job = submit(server, upload(server, data))
    body = wait_done(server, job)
    assert body["status"] == "failed"
    assert expected in body["error"]
    assert "result" not in body
    assert str(server.data_dir) not in body["error"]  # no server paths leak
    # ... and the server keeps serving: the real sample still transcribes.
    good = wait_done(server, submit(server, upload(server)))
    assert good["status"] == "success"


def test_extension_is_only_a_hint(server: Server) -> None:
    resp = requests.post(
        f"{server.url}/v1/input/upload-url?extension=wav",
        headers=server.headers,
        timeout=TIMEOUT,
    )  # no body at all is fine too
    assert resp.status_code == 201
    url = resp.json()["uploadUrl"]["PUT"]
    assert requests.put(url, data=SAMPLE_MP3.read_bytes(), timeout=TIMEOUT).status_code == 200
    assert wait_done(server, submit(server, url))["status"] == "success"


@pytest.mark.parametrize("extension", ["../etc", "m p3", "a" * 40, "mp3;rm"])
def test_bad_extension_is_400(server: Server, extension: str) -> None:
    resp = requests.post(
        f"{server.url}/v1/input/upload-url",
        params={"extension": extension},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 400
    assert "extension" in resp.json()["error"]["message"]


def test_submit_never_uploaded_url_is_400(server: Server) -> None:
    resp = submit_raw(server, upload_url(server))
    assert resp.status_code == 400
    assert "nothing was uploaded" in resp.json()["error"]["message"]


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/audio.mp3",
        "s3://bucket/key.mp3",
        "not a url",
        "http://127.0.0.1:1/v1/input/uploads/" + "a" * 32 + "?expires=1&sig=00",
    ],
)
def test_submit_foreign_url_is_400(server: Server, url: str) -> None:
    resp = submit_raw(server, url)
    assert resp.status_code == 400
    assert "only transcribes files uploaded to it" in resp.json()["error"]["message"]


def test_unknown_model_is_404_listing_installed(server: Server) -> None:
    resp = submit_raw(server, upload(server), model="large")
    assert resp.status_code == 404
    message = resp.json()["error"]["message"]
    assert "'large'" in message and "tiny" in message and "installed" in message
    assert "whisper-large" not in message  # the name as the user gave it
    resp = submit_raw(server, upload(server), model="..%2F..%2Fetc")
    assert resp.status_code == 404


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"langauge": "en"}, "'langauge'"),
        ({"beam_size": "5"}, "'beam_size'"),
        ({"beam_size": True}, "'beam_size'"),
        ({"beam_size": 2.5}, "'beam_size'"),
        ({"beam_size": 0}, "'beam_size'"),
        ({"temperature": "hot"}, "'temperature'"),
        ({"temperature": [0.0, "x"]}, "'temperature'"),
        ({"condition_on_previous_text": 1}, "'condition_on_previous_text'"),
        ({"suppress_tokens": "a,b"}, "'suppress_tokens'"),
        ({"suppress_tokens": [1, True]}, "'suppress_tokens'"),
        ({"task": "summarise"}, "'task'"),
        ({"language": "xx"}, "'language'"),
        ({"no_speech_threshold": 7}, "'no_speech_threshold'"),
    ],
)
def test_bad_param_is_400_naming_it(server: Server, params: dict[str, object], named: str) -> None:
    resp = submit_raw(server, upload(server), params)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "invalid_input"
    assert named in resp.json()["error"]["message"]


@pytest.mark.parametrize("params", [{"language": "fr"}, {"task": "translate"}])
def test_what_an_english_only_model_cannot_do_is_400(
    server: Server, params: dict[str, str]
) -> None:
    resp = submit_raw(server, upload(server), params, model="tiny.en")
    assert resp.status_code == 400
    assert "English-only" in resp.json()["error"]["message"]


def test_malformed_bodies_are_400(server: Server) -> None:
    path = server.url + SUBMIT.format(model="tiny")
    for body in (b"{", b"[]", b'{"input": {}}', b'{"URL": 5}', b'{"URL": "x", "extra": 1}'):
        resp = requests.post(
            path,
            data=body,
            headers={**server.headers, "Content-Type": "application/json"},
            timeout=TIMEOUT,
        )
        assert resp.status_code == 400, body
        assert resp.json()["error"]["message"].startswith("invalid request")
    resp = requests.post(
        path.replace("cpuflex", "turbo"),
        json={"input": {}, "URL": upload(server)},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 400
    assert "serviceTier" in resp.json()["error"]["message"]


def test_oversize_upload_is_413(server_factory: ServerFactory) -> None:
    small = server_factory.start("--max-upload-mb", "0.01", fake_engine=0.1)  # 10 KiB, no job
    url = upload_url(small)
    resp = requests.put(url, data=SAMPLE_MP3.read_bytes(), timeout=TIMEOUT)
    assert resp.status_code == 413
    assert "limit" in resp.json()["error"]["message"]

    def chunks() -> object:  # no Content-Length: the server counts while streaming
        for _ in range(20):
            yield b"\0" * 1024

    resp = requests.put(url, data=chunks(), timeout=TIMEOUT)
    assert resp.status_code == 413
    assert list((small.data_dir / "uploads").iterdir()) == []  # nothing left on disk
    assert requests.put(url, data=b"\0" * 1000, timeout=TIMEOUT).status_code == 200

    # the same limit holds for Eden AI's multipart file and OctoAI's base64 audio
    kept = set((small.data_dir / "uploads").iterdir())
    eden = requests.post(
        small.url + "/v2/audio/speech_to_text_async",
        data={"providers": "whisper"},
        files={"file": ("audio.mp3", SAMPLE_MP3.read_bytes())},
        headers=small.headers,
        timeout=TIMEOUT,
    )
    assert eden.status_code == 413, eden.text
    assert "limit" in eden.json()["error"]["message"]
    audio = base64.b64encode(b"\0" * 200_000).decode()
    for body in (json.dumps({"audio": audio}).encode(), iter([b'{"audio": "', audio.encode()])):
        octo = requests.post(
            small.url + "/predict",
            data=body,
            headers={**small.headers, "X-OctoAI-Async": "1"},
            timeout=TIMEOUT,
        )
        assert octo.status_code == 413, octo.text
    assert set((small.data_dir / "uploads").iterdir()) == kept


def test_expired_upload_url_is_403(server_factory: ServerFactory) -> None:
    short = server_factory.start("--upload-url-ttl", "1", fake_engine=0.1)  # no job
    url = upload_url(short)
    time.sleep(2.1)
    resp = requests.put(url, data=SAMPLE_MP3.read_bytes(), timeout=TIMEOUT)
    assert resp.status_code == 403
    assert "expired" in resp.json()["error"]["message"]


def test_interrupted_upload_leaves_nothing_behind(server: Server) -> None:
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(upload_url(server))
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(
            f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Length: 100000\r\n\r\n".encode()
            + b"\0" * 1000
        )
        time.sleep(0.3)
    time.sleep(0.5)
    assert not [p for p in (server.data_dir / "uploads").iterdir() if p.name.endswith(".part")]
    assert "Traceback" not in server.log()
    resp = requests.put(url.geturl(), data=SAMPLE_MP3.read_bytes(), timeout=TIMEOUT)
    assert resp.status_code == 200  # the same URL still works for a retry
