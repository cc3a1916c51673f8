"""The CLI against a hostile server (issue 20, the client side): a loopback fake of the Tiyaro
protocol that names a poll URL on another host, answers ``Retry-After: 999999``, puts terminal
escape sequences in its errors and transcripts, or names a job ``../../x``.

A second loopback server ("elsewhere", another port: another origin) records every request
that reaches it; the key must never be among them.
"""

from __future__ import annotations

import http.server
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from clihelpers import REPO, Cli, assert_one_error_line, make_tone
from local_server import serve_http

pytestmark = pytest.mark.timeout(60)  # a hang is a failure here, not a 5-minute wait

KEY = "hostile-test-key"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07"


@dataclass
class Plan:
    """What the fake answers: set per test."""

    poll_url: str = ""
    """The submit's ``urls.GET`` (empty: the fake's own poll path)."""
    job_id: str = "0123456789abcdef0123456789abcdef"
    poll_status: int = 200
    poll_headers: dict[str, str] = field(default_factory=dict)
    job: dict[str, Any] = field(default_factory=dict)
    """Fields merged into the poll body (status, error, result...)."""
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)
    """(method, path, Authorization) of every request."""


def _handler(plan: Plan, base: list[str]) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def _record(self) -> None:
            plan.seen.append((self.command, self.path, self.headers.get("Authorization")))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)

        def do_POST(self) -> None:
            self._record()
            if self.path.startswith("/v1/input/upload-url"):
                self._send(201, {"uploadUrl": {"PUT": f"{base[0]}/upload/1?sig=abc"}})
                return
            poll = plan.poll_url or f"{base[0]}/v1/async/jobs/{plan.job_id}"
            self._send(
                202,
                {"response": {"id": plan.job_id, "status": "accepted", "urls": {"GET": poll}}},
            )

        def do_PUT(self) -> None:
            self._record()
            self._send(200, {})

        def do_GET(self) -> None:
            self._record()
            if self.path.startswith("/v1/health"):
                self._send(404, {"error": "no such route"})
                return
            body = {"id": plan.job_id, "status": "processing", **plan.job}
            self._send(plan.poll_status, body, plan.poll_headers)

    return Handler


@dataclass
class Fake:
    url: str
    plan: Plan
    elsewhere: str
    elsewhere_plan: Plan


@pytest.fixture
def fake() -> Iterator[Fake]:
    plan, other = Plan(), Plan()
    base: list[str] = []
    other_base: list[str] = []
    with (
        serve_http(_handler(plan, base)) as url,
        serve_http(_handler(other, other_base)) as elsewhere,
    ):
        base.append(url)
        other_base.append(elsewhere)
        yield Fake(url, plan, elsewhere, other)


@pytest.fixture
def cli(tmp_path: Path, fake: Fake) -> Cli:
    runner = Cli(tmp_path / "cli")
    runner.env["WHISPERCLI_URL"] = fake.url
    runner.env["WHISPERCLI_API_KEY"] = KEY
    return runner


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tone(tmp_path_factory.mktemp("audio") / "tone.wav")


def test_a_poll_url_on_another_host_gets_no_key_and_no_request(
    cli: Cli, fake: Fake, tone: Path
) -> None:
    fake.plan.poll_url = f"{fake.elsewhere}/v1/async/jobs/{fake.plan.job_id}"
    fake.elsewhere_plan.job = {"status": "success", "result": {"text": " leaked"}}
    out = cli.run("transcribe", str(tone))
    assert out.code == 1, out.err
    assert "another host or scheme" in out.err and "only to the endpoint" in out.err
    assert_one_error_line(out.err)
    assert fake.elsewhere_plan.seen == []  # refused before any connection


def test_a_signed_url_elsewhere_is_fetched_without_the_key(
    cli: Cli, fake: Fake, tone: Path
) -> None:
    fake.plan.poll_url = f"{fake.elsewhere}/v1/async/jobs/{fake.plan.job_id}?sig=s1&expires=9"
    fake.elsewhere_plan.job = {"status": "success", "result": {"text": " fine"}}
    out = cli.run("transcribe", str(tone))
    assert out.code == 0, out.err
    assert out.out.strip() == "fine"
    assert fake.elsewhere_plan.seen and all(auth is None for _, _, auth in fake.elsewhere_plan.seen)
    assert all(auth == f"Bearer {KEY}" for m, p, auth in fake.plan.seen if m != "PUT")


def test_http_after_https_is_another_origin() -> None:
    from whispercli.http import origin

    assert origin("https://api.example.org/v1") != origin("http://api.example.org/v1")
    assert origin("http://localhost:8642/x") == origin("http://127.0.0.1:8642/y")
    assert origin("http://[::1]:8642/x") == origin("http://127.0.0.2:8642/y")
    assert origin("https://api.example.org/v1") == origin("https://API.example.org:443/z")


def test_a_huge_retry_after_does_not_outlast_the_request_budget(
    cli: Cli, fake: Fake, tone: Path
) -> None:
    fake.plan.poll_status = 503
    fake.plan.poll_headers = {"Retry-After": "999999"}
    started = time.monotonic()
    out = cli.run("transcribe", str(tone), WHISPERCLI_HTTP_TIMEOUT="3")
    took = time.monotonic() - started
    assert out.code == 1, out.err
    assert "HTTP 503" in out.err
    assert took < 30, f"took {took:.1f} s with a 3 s budget"  # was: forever (urllib3 slept)


def test_wait_timeout_governs_retry_after_sleeps(cli: Cli, fake: Fake, tone: Path) -> None:
    submitted = cli.run("submit", "-q", str(tone))
    assert submitted.code == 0, submitted.err
    fake.plan.poll_status = 503
    fake.plan.poll_headers = {"Retry-After": "999999"}
    started = time.monotonic()
    out = cli.run("wait", "--timeout", "2s", submitted.out.strip())
    took = time.monotonic() - started
    assert out.code == 7, out.err  # was: a hang (urllib3 slept what the server asked)
    assert "after 2 s" in out.err and "retry after 999999 s" in out.err
    assert took < 30, f"took {took:.1f} s for --timeout 2s"


def test_wait_timeout_ends_a_wait_on_a_server_that_keeps_asking_for_a_second(
    cli: Cli, fake: Fake, tone: Path
) -> None:
    submitted = cli.run("submit", "-q", str(tone))
    assert submitted.code == 0, submitted.err
    fake.plan.poll_status = 503
    fake.plan.poll_headers = {"Retry-After": "1"}
    started = time.monotonic()
    out = cli.run("wait", "--timeout", "2s", submitted.out.strip(), WHISPERCLI_HTTP_TIMEOUT="30")
    took = time.monotonic() - started
    assert out.code == 7, out.err
    assert "after 2 s" in out.err
    assert took < 30, f"took {took:.1f} s for --timeout 2s"


def test_escape_sequences_from_the_server_never_reach_stderr(
    cli: Cli, fake: Fake, tone: Path
) -> None:
    fake.plan.job = {"status": "failed", "error": f"boom {ESCAPES}"}
    out = cli.run("transcribe", str(tone))
    assert out.code == 3, out.err
    assert "\x1b" not in out.err and "\x07" not in out.err
    assert "boom \\x1b]0;pwned\\x07" in out.err


def test_a_transcript_is_byte_exact_in_a_pipe_and_escaped_on_a_terminal(
    cli: Cli, fake: Fake, tone: Path
) -> None:
    text = f" hello {ESCAPES} world"
    fake.plan.job = {"status": "success", "result": {"text": text, "warnings": [ESCAPES]}}
    piped = cli.run("transcribe", str(tone))
    assert piped.code == 0, piped.err
    assert piped.out == text.strip() + "\n"  # what the server sent, for a file or a pipe
    assert "\x1b" not in piped.err and "\\x1b]52" in piped.err  # the warning line

    main, child = pty.openpty()  # stdout a terminal: what a person sees
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "whispercli", "transcribe", "--force", str(tone)],
            env=cli.subprocess_env(),
            stdin=subprocess.DEVNULL,
            stdout=child,
            stderr=subprocess.PIPE,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        os.close(child)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    assert proc.returncode == 0, proc.stderr
    assert b"hello" in shown and b"\x1b" not in shown
    assert b"\\x1b]0;pwned\\x07" in shown


def test_a_job_id_that_is_a_path_is_refused(cli: Cli, fake: Fake, tone: Path) -> None:
    fake.plan.job_id = "../../x"
    out = cli.run("submit", str(tone))
    assert out.code == 1, out.err
    assert "not a job id" in out.err
    assert_one_error_line(out.err)
    paths = [p.split("?")[0] for _, p, _ in fake.plan.seen]
    allowed = ("/v1/health", "/v1/input/", "/upload/", "/v1/async/ent/")
    assert all(p.startswith(allowed) for p in paths), paths
