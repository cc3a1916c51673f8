"""Hostile input against a real ``whispercli server run`` (issue 20), where the process matters:
its memory (RSS from /proc) and its health latency under attack, half-sent and ambiguous
requests, a race between a PUT and a submit, slow remote ends (a ``file_url``, webhook
receivers) and shutdown, and its own log. On both backends where storage is involved."""

from __future__ import annotations

import base64
import contextlib
import json
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from support.net import read_status, receiver, trickler
from support.protocol import wait_done
from support.samples import SAMPLE_MP3 as SAMPLE
from support.samples import assert_sample
from support.sandbox import Sandbox
from support.servers import BOTH_BACKENDS, Server
from support.watch import Watch

pytestmark = pytest.mark.reliability

MIB = 1024 * 1024
SUBMIT = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny"
EDEN = "/v2/audio/speech_to_text_async"
BLOCK = b"A" * MIB


def _watch(server: Server, sandbox: Sandbox) -> Watch:
    return Watch(server.pid, sandbox.url + "/v1/health", sandbox.auth())


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def send_until_answered(
    port: int, head: bytes, chunks: Iterator[bytes], give_up_after: int
) -> tuple[int | None, int]:
    """Send ``head``, then body chunks until the server answers (or ``give_up_after`` bytes
    are out); returns the status (None: no answer) and the body bytes sent before it."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0] or sent >= give_up_after:
                break
            sock.settimeout(5)
            try:
                sock.sendall(chunk)
            except OSError:  # the server closed after answering
                break
            sent += len(chunk)
        return read_status(sock, 15), sent


def _blocks(count: int, first: bytes = b"", last: bytes = b"") -> Iterator[bytes]:
    yield first
    for _ in range(count):
        yield BLOCK
    yield last


# -- item 1: bodies without the key ---------------------------------------------------------------
@BOTH_BACKENDS
def test_bodies_without_the_key_are_refused_before_they_are_read(
    live_server: Server, sandbox: Sandbox
) -> None:
    """Five clients each announce a 200 MiB JSON submit without the key: each gets its 401
    before it has sent 8 MiB, the server's memory stays flat and health stays quick."""
    port = sandbox.port
    head = _head(
        "POST", SUBMIT, {"Content-Type": "application/json", "Content-Length": str(200 * MIB)}
    )
    with _watch(live_server, sandbox) as watch, ThreadPoolExecutor(5) as pool:
        results = list(
            pool.map(
                lambda _: send_until_answered(port, head, _blocks(200, b'{"URL": "'), 40 * MIB),
                range(5),
            )
        )
    assert [status for status, _ in results] == [401] * 5, results
    assert max(sent for _, sent in results) <= 8 * MIB, results
    assert watch.growth < 30, f"RSS grew {watch.growth:.0f} MiB"
    assert watch.worst_health < 1.0, f"health took {watch.worst_health:.2f} s"
    keyed = {**sandbox.auth(), "Content-Type": "application/json"}
    declared = _head("POST", SUBMIT, {**keyed, "Content-Length": str(200 * MIB)})
    status, sent = send_until_answered(port, declared, _blocks(200, b'{"URL": "'), 40 * MIB)
    assert status == 413 and sent <= 8 * MIB
    chunked = _head("POST", SUBMIT, {**keyed, "Transfer-Encoding": "chunked"})
    frames = (b"%x\r\n%s\r\n" % (len(c), c) for c in _blocks(200, b'{"URL": "') if c)
    status, sent = send_until_answered(port, chunked, frames, 40 * MIB)
    assert status == 413 and sent <= 8 * MIB


# -- item 10: OctoAI's base64 audio streamed, the rest parsed small ------------------------------
@BOTH_BACKENDS
@pytest.mark.fake_engine(None)  # the words say which bytes were decoded
def test_predict_streams_its_audio_field_with_flat_memory(
    live_server: Server, sandbox: Sandbox
) -> None:
    """Two 112 MiB base64 fields: the server's memory grows by less than half of one (the
    PostgreSQL pool's buffers, once), and the second adds (almost) nothing."""
    prefix, suffix = b'{"language": "en", "audio": "', b'"}'
    headers = {**sandbox.auth(), "X-OctoAI-Async": "1", "Content-Type": "application/json"}
    peaks = []
    with _watch(live_server, sandbox) as watch:
        for blocks in (112, 112):
            answer = requests.post(  # a generator body goes chunked
                sandbox.url + "/predict",
                data=_blocks(blocks, prefix, suffix),
                headers=headers,
                timeout=120,
            )
            assert answer.status_code == 200, answer.text
            time.sleep(0.3)  # a last RSS sample
            peaks.append(watch.peak)
    assert watch.growth < 56, f"RSS grew {watch.growth:.0f} MiB for a 112 MiB body"
    assert peaks[1] - peaks[0] < 12, f"a second body took {peaks[1] - peaks[0]:.0f} MiB more"
    audio = base64.b64encode(SAMPLE.read_bytes()).decode()
    real = requests.post(
        sandbox.url + "/predict", json={"audio": audio}, headers=headers, timeout=30
    ).json()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        poll = requests.get(real["poll_url"], headers=sandbox.auth(), timeout=10).json()
        if poll["status"] == "completed":
            break
        time.sleep(0.3)
    result = requests.get(poll["response_url"], headers=sandbox.auth(), timeout=10).json()
    assert_sample(result["transcription"])


# -- item 13: a PUT that ends after a submit -------------------------------------------------------
@BOTH_BACKENDS
@pytest.mark.fake_engine(None)  # the words say which bytes were decoded
def test_a_put_that_ends_after_a_submit_cannot_replace_the_jobs_bytes(
    live_server: Server, sandbox: Sandbox
) -> None:
    auth = sandbox.auth()
    made = requests.post(sandbox.url + "/v1/input/upload-url", headers=auth, timeout=10)
    put_url = made.json()["uploadUrl"]["PUT"]
    assert requests.put(put_url, data=SAMPLE.read_bytes(), timeout=30).status_code == 200
    other = b"these bytes are not audio " * 4000
    parts = urlsplit(put_url)
    with socket.create_connection(("127.0.0.1", sandbox.port)) as sock:
        head = _head("PUT", f"{parts.path}?{parts.query}", {"Content-Length": str(len(other))})
        sock.sendall(head + other[: len(other) // 2])
        time.sleep(0.5)  # the server has read the headers and is storing the body
        job = requests.post(sandbox.url + SUBMIT, json={"URL": put_url}, headers=auth, timeout=30)
        assert job.status_code == 202, job.text
        sock.sendall(other[len(other) // 2 :])
        assert read_status(sock, 30) == 409, "the late PUT replaced the bytes of a submitted job"
    poll_url = job.json()["response"]["urls"]["GET"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = requests.get(poll_url, params={"wait": 10}, headers=auth, timeout=20).json()
        if body["status"] in ("success", "failed"):
            break
    assert body["status"] == "success", body.get("error")
    assert_sample(body["result"]["text"])  # the sample decoded, not the late bytes


# -- item 4: a slow file_url ----------------------------------------------------------------------


@BOTH_BACKENDS
@pytest.mark.server_args("--file-url-timeout", "2")
def test_slow_file_urls_never_starve_the_api(live_server: Server, sandbox: Sandbox) -> None:
    """Six launches whose file_url trickles a byte every 0.5 s: four downloads run (each ends
    at its 2 s deadline), the other two are refused at once (429), health stays quick."""
    with trickler(0.5) as slow, _watch(live_server, sandbox) as watch:

        def launch(i: int) -> tuple[int, float, str]:
            started = time.monotonic()
            answer = requests.post(
                sandbox.url + EDEN,
                json={"providers": "whisper", "file_url": f"{slow}/{i}.mp3"},
                headers=sandbox.auth(),
                timeout=60,
            )
            return answer.status_code, time.monotonic() - started, answer.text

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(launch, range(6)))
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [400, 400, 400, 400, 429, 429], results
    assert all(took < 6 for _, took, _ in results), results
    assert all("longer than 2 s" in text for status, _, text in results if status == 400)
    assert watch.worst_health < 1.0, f"health took {watch.worst_health:.2f} s"


# -- item 8: slow webhook receivers -------------------------------------------------------------
@BOTH_BACKENDS
@pytest.mark.own_server  # it stops the server
def test_a_slow_webhook_receiver_delays_nobody_and_holds_no_shutdown(
    live_server: Server, sandbox: Sandbox
) -> None:
    auth = sandbox.auth()

    def submit(hook: str) -> dict[str, Any]:
        made = requests.post(sandbox.url + "/v1/input/upload-url", headers=auth, timeout=10)
        put_url = made.json()["uploadUrl"]["PUT"]
        requests.put(put_url, data=SAMPLE.read_bytes(), timeout=30).raise_for_status()
        body = {"URL": put_url, "webhook": hook}
        answer = requests.post(sandbox.url + SUBMIT, json=body, headers=auth, timeout=30)
        assert answer.status_code == 202, answer.text
        job: dict[str, Any] = answer.json()["response"]
        return job

    with trickler(0.5) as slow, receiver() as quick:  # a byte every 0.5 s; at once
        wait_done(live_server, submit(f"{slow}/hook"))  # its attempt now trickles up to 15 s
        wait_done(live_server, submit(quick.url))
        ended = time.monotonic()
        assert quick.wait(1, 10), "the quick receiver's webhook waited for the slow one"
        arrived = quick.received[0].at
        assert arrived - ended < 3, f"delivered {arrived - ended:.1f} s after"
        assert live_server.proc is not None
        started = time.monotonic()
        live_server.proc.terminate()
        code = live_server.proc.wait(30)
        took = time.monotonic() - started
    assert code == 0 and took < 5, f"shutdown took {took:.1f} s with a webhook in flight"


# -- items 15, 7 and 16: the HTTP layer, the log, the URLs handed out -----------------------------
@pytest.mark.server_args("--header-timeout", "1")
def test_half_sent_and_ambiguous_requests_are_dropped(
    live_server: Server, sandbox: Sandbox
) -> None:
    port = sandbox.port
    with (
        socket.create_connection(("127.0.0.1", port)) as idle,
        socket.create_connection(("127.0.0.1", port)) as half,
    ):
        half.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        for sock in (idle, half):
            sock.settimeout(10)
            assert sock.recv(100) == b"", "a half-sent request kept its connection"
        assert time.monotonic() - started < 4
    framing = {"Content-Length": "5", "Transfer-Encoding": "chunked", **sandbox.auth()}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_head("POST", SUBMIT, framing) + b"5\r\nhello\r\n0\r\n\r\n")
        assert read_status(sock, 10) == 400
        sock.settimeout(10)
        with contextlib.suppress(OSError):
            while sock.recv(4096):
                pass  # the server closes the connection after its 400
    health = requests.get(sandbox.url + "/v1/health", headers=sandbox.auth(), timeout=10)
    assert health.status_code == 200


@pytest.mark.server_args("--public-url", "https://stt.example.org/base")
def test_the_log_escapes_control_characters_and_urls_name_the_public_url(
    live_server: Server, sandbox: Sandbox
) -> None:
    hostile = "/%1b]0;owned%07/%1b[2J%00tail"
    requests.get(sandbox.url + hostile, timeout=10)  # no key: a 401 the log records
    auth = {**sandbox.auth(), "Host": "evil.example"}
    made = requests.post(sandbox.url + "/v1/input/upload-url", headers=auth, timeout=10).json()
    assert made["uploadUrl"]["PUT"].startswith("https://stt.example.org/base/v1/input/uploads/")
    time.sleep(0.3)
    log = live_server.log_path.read_bytes()
    assert not any(byte in log for byte in (b"\x1b", b"\x07", b"\x00")), "raw control bytes"
    assert b"\\x1b]0;owned\\x07/\\x1b[2J\\x00tail" in log
    assert b"evil.example" not in json.dumps(made).encode()
