"""Webhook signing, the SSRF guard, the sender and the retry schedule, without a server.

Signatures are checked with the ``standardwebhooks`` package (an independent implementation)
and with the Standard Webhooks reference example. No test sends a byte off loopback: the
``no_connect`` tripwire fails a test on any other connect, and names resolve via ``names``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from support.net import port_of, raw_server, receiver, silent_http

from whispercli.server.webhooks import guard, schedule, sender
from whispercli.server.webhooks import signatures as signing

Names = Callable[[dict[str, list[str]]], None]
LOOPBACK = guard.Policy(allow_loopback=True)


# -- signing ------------------------------------------------------------------------------------
def test_headers_verify_with_the_standardwebhooks_package() -> None:
    secret = signing.new_secret()
    body = json.dumps({"id": "abc", "status": "success"}).encode()
    headers = signing.WebhookSigner(secret).headers("msg_1", body)
    assert Webhook(secret).verify(body, headers) == {"id": "abc", "status": "success"}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)


def test_signature_matches_the_reference_example() -> None:
    # The example of the Standard Webhooks reference libraries.
    signer = signing.WebhookSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = signer.signature("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_each_attempt_is_signed_at_its_own_time() -> None:
    signer = signing.WebhookSigner(signing.new_secret())
    first = signer.headers("msg_1", b"{}", now=1000.0)
    later = signer.headers("msg_1", b"{}", now=1060.0)
    assert first["webhook-id"] == later["webhook-id"] == "msg_1"
    assert (first["webhook-timestamp"], later["webhook-timestamp"]) == ("1000", "1060")
    assert first["webhook-signature"] != later["webhook-signature"]


def test_secret_file_is_created_private_once(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "webhook-secret"
    secret = signing.load_secret(path)
    assert secret.startswith("whsec_") and len(secret) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.load_secret(path) == secret
    os.chmod(path, 0o644)
    with pytest.raises(signing.WebhookSecretError, match="chmod 600"):
        signing.load_secret(path)
    os.chmod(path, 0o600)
    path.write_text("not-a-whsec\n")
    with pytest.raises(signing.WebhookSecretError, match="whsec_"):
        signing.load_secret(path)


# -- guard --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://hook.test/x", "only http"),
        ("file:///etc/passwd", "only http"),
        ("http://user:pw@hook.test/", "user info"),
        ("http:///nohost", "no host"),
        ("http://hook.test:99999/", "malformed"),
        ("http://hook test/", "spaces"),
        ("http://" + "a" * 3000 + ".test/", "longer than"),
        ("http://10.1.2.3/", "private"),
        ("http://192.168.0.10:8080/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://100.64.0.1/", "private"),  # shared (carrier-grade NAT) space
        ("http://[fd12::1]/", "private"),
        ("http://[fe80::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://[::ffff:169.254.169.254]/", "metadata"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://240.0.0.1/", "reserved"),
        ("http://127.0.0.1:9/", "loopback"),
        ("http://[::1]:9/", "loopback"),
        ("http://internal.test/", "private"),
        ("http://mixed.test/", "private"),
        ("http://nowhere.test/", "cannot resolve"),
    ],
)
def test_guard_refuses_before_any_connect(
    url: str, why: str, names: Names, no_connect: list[object]
) -> None:
    names({"internal.test": ["10.0.0.5"], "mixed.test": ["93.184.215.14", "192.168.1.1"]})
    with pytest.raises(guard.RefusedUrl, match=why):
        guard.check(url, guard.Policy())
    outcome = sender.post(url, b"{}", {}, guard.Policy())
    assert outcome.status is None and outcome.error and outcome.error.startswith("refused")
    assert no_connect == []


def test_guard_policies(names: Names, no_connect: list[object]) -> None:
    names({"hook.test": ["93.184.215.14"], "lan.test": ["10.0.0.5"]})
    target = guard.check("https://hook.test/in?x=1#frag", guard.Policy())
    assert (target.host, target.port, target.path) == ("hook.test", 443, "/in?x=1")
    assert target.addresses == ("93.184.215.14",)
    assert guard.check("http://127.0.0.1:8/", LOOPBACK).addresses == ("127.0.0.1",)
    with pytest.raises(guard.RefusedUrl, match="--webhook-allow-private"):
        guard.check("http://lan.test/", LOOPBACK)
    private = guard.Policy(allow_private=True)
    assert guard.check("http://lan.test/", private).addresses == ("10.0.0.5",)
    assert guard.check("http://[::1]:8/", private).addresses == ("::1",)
    for always in ("http://169.254.169.254/", "http://224.0.0.1/"):
        with pytest.raises(guard.RefusedUrl):
            guard.check(always, private)
    assert no_connect == []


# -- sender -------------------------------------------------------------------------------------
def test_sender_connects_to_the_checked_address_with_the_right_host(
    names: Names, no_connect: list[object]
) -> None:
    with receiver() as rx:
        names({"hook.test": ["127.0.0.1"]})
        outcome = sender.post(
            f"http://hook.test:{rx.port}/in?a=1", b'{"x": 1}', {"webhook-id": "msg_9"}, LOOPBACK
        )
        assert outcome.ok and outcome.status == 200
        [got] = rx.received
    assert got.path == "/in?a=1" and got.body == b'{"x": 1}'
    assert got.headers["Host"] == f"hook.test:{rx.port}"
    assert got.headers["webhook-id"] == "msg_9"
    assert got.headers["Content-Type"] == "application/json"
    assert no_connect == [("127.0.0.1", rx.port)]


def test_sender_does_not_follow_redirects(no_connect: list[object]) -> None:
    with receiver([302]) as rx:
        rx.headers_out["Location"] = "http://169.254.169.254/"
        outcome = sender.post(rx.url, b"{}", {}, LOOPBACK)
        assert not outcome.ok and outcome.status == 302
        assert outcome.error == "redirects are not followed"
        assert len(rx.received) == 1
    assert len(no_connect) == 1


def test_sender_non_2xx_and_unreachable_are_failures(no_connect: list[object]) -> None:
    with receiver([500]) as rx:
        assert sender.post(rx.url, b"{}", {}, LOOPBACK).status == 500
        port = rx.port
    down = sender.post(f"http://127.0.0.1:{port}/hook", b"{}", {}, LOOPBACK)
    assert down.status is None and down.error and "Connection" in down.error


def test_sender_times_out(no_connect: list[object]) -> None:
    with silent_http() as url:  # accepts the connection, never answers
        started = time.monotonic()
        outcome = sender.post(f"{url}/", b"{}", {}, LOOPBACK, timeout=0.5)
        assert outcome.status is None and outcome.error and "timed out" in outcome.error
        assert time.monotonic() - started < 5
    assert sender.TIMEOUT == 10.0


def test_sender_drops_a_large_response_body(no_connect: list[object]) -> None:
    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 100000)
        conn.close()

    with raw_server(answer) as url:
        outcome = sender.post(f"{url}/", b"{}", {}, LOOPBACK, timeout=2)
    assert outcome.ok


# -- schedule -----------------------------------------------------------------------------------
def test_retry_delays_double_from_five_seconds_up_to_an_hour() -> None:
    delays = [schedule.retry_delay(n) for n in range(1, 15)]
    assert delays[:11] == [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600]
    assert set(delays[10:]) == {3600}
    assert schedule.retry_delay(10_000) == 3600
    with pytest.raises(ValueError):
        schedule.retry_delay(0)


def test_retries_stop_after_a_day() -> None:
    offsets = schedule.offsets()
    assert offsets[0] == 0 and offsets[1] == 5
    assert offsets[-1] <= 24 * 3600 < offsets[-1] + 3600
    assert len(offsets) == 33
    assert schedule.next_attempt_at(100.0, 1, 110.0) == 115.0
    assert schedule.next_attempt_at(0.0, 40, 24 * 3600 - 10) is None


def test_https_sends_the_url_host_as_sni_to_the_checked_address(
    tmp_path: Path, names: Names, no_connect: list[object]
) -> None:
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=hook.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: seen.append(name)

    def serve(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(ssl.SSLError, OSError):
            context.wrap_socket(conn, server_side=True).recv(1)

    names({"hook.test": ["127.0.0.1"]})
    with raw_server(serve) as url:
        port = port_of(url)
        outcome = sender.post(f"https://hook.test:{port}/in", b"{}", {}, LOOPBACK, timeout=5)
    assert seen == ["hook.test"]
    # a self-signed certificate is not trusted: the attempt fails, nothing is sent in clear
    assert outcome.status is None and outcome.error and "CERTIFICATE" in outcome.error.upper()
    assert no_connect == [("127.0.0.1", port)]
