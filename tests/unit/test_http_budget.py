"""A server that accepts and never answers: the whole request is bounded, and retries are said."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import Cli
from support.net import silent_http

from whispercli.errors import ExitCode, UnreachableError
from whispercli.http import HttpCore


@pytest.fixture
def silent_server() -> Iterator[str]:
    with silent_http() as url:
        yield url


def test_the_whole_request_is_bounded_and_each_retry_is_logged(
    silent_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    http = HttpCore(silent_server, None, total_timeout=1.5, backoff=0.05)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, "whispercli.http"),
        pytest.raises(UnreachableError) as err,
    ):
        http.json("GET", "/v1/health")
    elapsed = time.monotonic() - started
    assert 1.2 < elapsed < 2.5, elapsed  # not 4 tries x the read timeout
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and "did not answer within 0.5 s" in retries[0] and "try 2 of 4" in retries[0]
    assert "after" in err.value.message and "tries" in err.value.message


def test_the_cli_says_it_is_retrying_and_exits_6_within_the_budget(
    silent_server: str, tmp_path: Path
) -> None:
    cli = Cli(tmp_path)
    audio = tmp_path / "a.mp3"
    audio.write_bytes(b"not really audio")
    started = time.monotonic()
    done = cli.run("--url", silent_server, "transcribe", str(audio), WHISPERCLI_HTTP_TIMEOUT="1.5")
    assert time.monotonic() - started < 4
    assert done.code == ExitCode.UNREACHABLE, done.err
    assert "whispercli: the server at" in done.err and "retrying" in done.err
    bad = cli.run("--url", silent_server, "transcribe", str(audio), WHISPERCLI_HTTP_TIMEOUT="no")
    assert bad.code != 0 and "WHISPERCLI_HTTP_TIMEOUT" in bad.err
