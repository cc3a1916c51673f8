"""The ``openai`` backend through the real CLI, against a loopback fake of OpenAI's API (its
documented shapes and quirks: tests/cli/fake_openai.py) and against the embedded server's own
OpenAI routes: every format, word timestamps, the verbs a protocol without jobs refuses, the
refusals before upload for api.openai.com, retries, streaming through the library, Ctrl-C."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from fake_openai import KEY, SEGMENTS, TEXT, Fake, serve
from support.cli import Cli, assert_one_error_line
from support.samples import SAMPLE_MP3, assert_sample

import whispercli.formats as formats
from whispercli.protocol import Result, Segment

ZERO_ID = "0" * 32


@dataclass
class Endpoint:
    """An OpenAI-compatible endpoint: the fake, or the embedded server (``server``)."""

    url: str
    key: str
    fake: Fake | None = None
    server: Any = None

    def requests(self) -> int:
        """Requests it has seen so far (the embedded server's log has a line for each)."""
        if self.fake is not None:
            return self.fake.requests
        return self.server.log().count(" whispercli.server: ")

    def transcript(self) -> Result:
        """The last transcript as the endpoint made it (what the CLI must write from)."""
        if self.fake is not None:
            return Result(TEXT, [Segment(i, a, b, t) for i, (a, b, t) in enumerate(SEGMENTS)])
        headers = self.server.headers
        jobs = requests.get(f"{self.server.url}/v1/async/jobs", headers=headers, timeout=10)
        newest = jobs.json()["jobs"][0]["id"]
        job = requests.get(f"{self.server.url}/v1/async/jobs/{newest}", headers=headers, timeout=10)
        return Result.from_dict(job.json()["result"])


@pytest.fixture
def fake() -> Iterator[Fake]:
    with serve() as running:
        yield running


@pytest.fixture(params=["fake", "embedded"])
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    if request.param == "fake":
        fake: Fake = request.getfixturevalue("fake")
        return Endpoint(fake.url + "/v1", KEY, fake=fake)
    server = request.getfixturevalue("server")
    return Endpoint(server.url + "/v1", server.api_key, server=server)


def _cli(root: Path, url: str, key: str) -> Cli:
    cli = Cli(root)
    (Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").write_text(
        f'[profiles.oa]\nurl = "{url}"\nbackend = "openai"\napi_key = "{key}"\n'
    )
    return cli


@pytest.fixture
def cli(tmp_path: Path, endpoint: Endpoint) -> Cli:
    return _cli(tmp_path / "cli", endpoint.url, endpoint.key)


@pytest.fixture
def fake_cli(tmp_path: Path, fake: Fake) -> Cli:
    return _cli(tmp_path / "cli", fake.url + "/v1", KEY)


def test_transcribe_writes_every_format(endpoint: Endpoint, cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = cli.run("--profile", "oa", "transcribe", str(SAMPLE_MP3), "-o", str(out))
    assert done.code == 0, done.err
    made = endpoint.transcript()
    for fmt in ("txt", "srt", "vtt", "tsv"):
        assert (out / f"sample.{fmt}").read_text() == formats.render(made, fmt), fmt
    data = json.loads((out / "sample.json").read_text())
    assert [s["text"] for s in data["segments"]] == [s.text for s in made.segments]
    assert all("words" not in s for s in data["segments"])  # none unless asked for
    assert not cli.jobs_file.exists() or json.loads(cli.jobs_file.read_text())["jobs"] == []
    if endpoint.fake is not None:
        [post] = endpoint.fake.posts
        assert (
            post["path"] == "/v1/audio/transcriptions" and post["file"] == SAMPLE_MP3.read_bytes()
        )
        assert post["fields"] == [
            ("model", "whisper-1"),  # the backend's default when the profile names none
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "segment"),
        ]
    else:
        assert_sample((out / "sample.txt").read_text())


def test_word_timestamps_go_back_into_their_segments(endpoint: Endpoint, cli: Cli) -> None:
    done = cli.run(
        "--profile", "oa", "transcribe", "--word-timestamps", "-f", "json", str(SAMPLE_MP3)
    )
    assert done.code == 0, done.err
    segments = json.loads(done.out)["segments"]
    assert segments and all(s["words"] for s in segments)
    for segment in segments:
        assert all(w["word"].startswith(" ") for w in segment["words"])
        assert segment["start"] - 0.5 <= segment["words"][0]["start"] <= segment["end"]
    if endpoint.fake is not None:
        assert [[w["word"] for w in s["words"]] for s in segments] == [
            [" Hello", " there."],
            [" How", " are", " you?"],
        ]
        assert ("timestamp_granularities[]", "word") in endpoint.fake.posts[0]["fields"]
        srt = cli.run(
            "--profile", "oa", "transcribe", "--word-timestamps", "-f", "srt", str(SAMPLE_MP3)
        )
        assert srt.out.startswith("1\n00:00:00,100 --> 00:00:01,900\nHello there.\n")  # word-timed


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("submit", str(SAMPLE_MP3)), "OpenAI cannot submit a job to wait for later"),
        (("upload", str(SAMPLE_MP3)), "OpenAI cannot take an upload on its own"),
        (("status",), "OpenAI cannot look a job up"),
        (("status", ZERO_ID), "OpenAI cannot look a job up"),
        (("wait", ZERO_ID), "OpenAI cannot look a job up"),
        (("jobs", "list", "--remote"), "OpenAI cannot list jobs"),
        (("jobs", "cancel", ZERO_ID), "OpenAI cannot look a job up"),
        (("transcribe", "--webhook", "https://h.example/", str(SAMPLE_MP3)), "call a webhook"),
    ],
)
def test_verbs_without_jobs_exit_2_before_any_request(
    endpoint: Endpoint, cli: Cli, args: tuple[str, ...], said: str
) -> None:
    before = endpoint.requests()
    done = cli.run("--profile", "oa", *args)
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert said in done.err and "hint:" in done.err, done.err
    assert endpoint.requests() == before


def test_api_openai_com_refusals_before_any_request(tmp_path: Path) -> None:
    """The built-in profile: a file over 25 MiB and an option OpenAI has no field for are
    refused locally (this machine has no network: a request would exit 6, not 2)."""
    cli = Cli(tmp_path / "cli")
    big = tmp_path / "long.mp3"
    with big.open("wb") as fh:
        fh.truncate(26 * 1024 * 1024)
    done = cli.run("--profile", "openai", "transcribe", str(big), OPENAI_API_KEY="sk-test")
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert "long.mp3 is 26 MiB, more than the 25 MiB api.openai.com takes" in done.err
    assert "ffmpeg" in done.err
    done = cli.run(
        "--profile", "openai", "transcribe", "--beam-size", "3", str(SAMPLE_MP3),
        OPENAI_API_KEY="sk-test",
    )  # fmt: skip
    assert done.code == 2 and "OpenAI cannot take --beam-size on api.openai.com" in done.err
    done = cli.run("--profile", "openai", "transcribe", str(SAMPLE_MP3))
    assert done.code == 5 and "OPENAI_API_KEY" in done.err, done.err
    shown = json.loads(cli.run("--profile", "openai", "config", "show", "--json").out)
    assert (shown["url"], shown["backend"], shown["model"]) == (
        "https://api.openai.com/v1",
        "openai",
        "whisper-1",
    )


def test_openai_base_url_and_options_sent_as_fields(fake: Fake, tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    env = {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": KEY}
    done = cli.run(
        "--profile", "openai", "transcribe", "-l", "en", "--initial-prompt", "Names.",
        "--temperature", "0.2", "--beam-size", "3", "--no-vad-filter", str(SAMPLE_MP3), **env,
    )  # fmt: skip
    assert done.code == 0, done.err
    assert done.out == "Hello there.\nHow are you?\n"
    fields = fake.posts[0]["fields"]
    assert fields[:3] == [
        ("model", "whisper-1"),
        ("response_format", "verbose_json"),
        ("timestamp_granularities[]", "segment"),
    ]
    assert dict(fields[3:]) == {
        "language": "en",
        "prompt": "Names.",
        "temperature": "0.2",
        "beam_size": "3",
        "vad_filter": "false",
    }  # fmt: skip  (extra fields, as the SDK's extra_body sends them)
    done = cli.run(
        "--profile", "openai", "transcribe", "--task", "translate", str(SAMPLE_MP3), **env
    )
    assert done.code == 0 and fake.posts[1]["path"] == "/v1/audio/translations", done.err
    shown = json.loads(cli.run("--profile", "openai", "config", "show", "--json", **env).out)
    assert shown["url_source"] == "OPENAI_BASE_URL" and shown["key_source"] == "OPENAI_API_KEY"


def test_a_429_is_retried_after_retry_after_and_a_413_explained(
    fake: Fake, fake_cli: Cli, tmp_path: Path
) -> None:
    limited = tmp_path / "limited.mp3"
    limited.write_bytes(b"RATE" + SAMPLE_MP3.read_bytes())
    started = time.monotonic()
    done = fake_cli.run("--profile", "oa", "transcribe", str(limited))
    assert done.code == 0 and done.out == "Hello there.\nHow are you?\n", done.err
    assert len(fake.posts) == 2 and time.monotonic() - started >= 1.0  # Retry-After: 1
    assert "HTTP 429; retrying in 1 s" in done.err
    fake.max_bytes = 1000
    done = fake_cli.run("--profile", "oa", "transcribe", str(SAMPLE_MP3))
    assert done.code == 1, done.err
    assert_one_error_line(done.err)
    assert "Maximum content size limit (1000) exceeded (HTTP 413)" in done.err
    assert "upload limit" in done.err


def test_the_library_streams_gpt_4o_pieces(
    fake: Fake, fake_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whispercli.client import Client
    from whispercli.errors import UsageError

    for name, value in fake_cli.env.items():
        monkeypatch.setenv(name, value)
    client = Client(profile="oa")
    seen: list[list[str]] = []
    job = client.submit(
        SAMPLE_MP3,
        model="gpt-4o-transcribe",
        on_progress=lambda info: seen.append([s.text for s in info.partial_segments]),
    )
    assert seen[0] == ["Hello"] and seen[-1] == [TEXT]  # one running segment: no segment_id
    assert job.info is not None and job.info.terminal and job.wait().text == TEXT
    assert dict(fake.posts[0]["fields"]) == {
        "model": "gpt-4o-transcribe",
        "response_format": "json",
        "stream": "true",
    }  # fmt: skip  (gpt-4o answers json only)
    quiet = client.submit(SAMPLE_MP3, model="gpt-4o-transcribe")
    assert quiet.result().text == TEXT and quiet.result().segments == []
    assert quiet.status() == "success" and len(fake.posts) == 2  # asked nothing more
    with pytest.raises(UsageError, match="OpenAI cannot list jobs"):
        client.jobs()


def test_an_error_event_in_the_stream_fails_the_job(
    fake: Fake, fake_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whispercli.client import Client
    from whispercli.errors import JobFailedError

    for name, value in fake_cli.env.items():
        monkeypatch.setenv(name, value)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"FAIL" + SAMPLE_MP3.read_bytes())
    seen: list[str] = []
    client = Client(profile="oa")
    with pytest.raises(JobFailedError, match="could not be decoded") as failed:
        client.submit(bad, model="gpt-4o-transcribe", on_progress=lambda i: seen.append(i.status))
    assert failed.value.exit_code == 3 and seen == ["processing", "processing"]


def test_an_interrupted_transcribe_says_the_work_is_lost(
    fake: Fake, fake_cli: Cli, tmp_path: Path
) -> None:
    slow = tmp_path / "slow.mp3"
    slow.write_bytes(b"SLOW" + SAMPLE_MP3.read_bytes())
    fake.slow_seconds = 20
    proc = fake_cli.start("--profile", "oa", "transcribe", str(slow))
    try:
        deadline = time.monotonic() + 30
        while not fake.posts:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert out == "" and "the work in progress is lost" in err and "Traceback" not in err


def test_a_job_that_fails_on_the_embedded_server_exits_3(server: Any, tmp_path: Path) -> None:
    """As through the Tiyaro backend: the job ran and failed (the server's OpenAI route says so
    with its error code), so exit 3, not the 1 of a server error."""
    cli = _cli(tmp_path / "cli", server.url + "/v1", server.api_key)
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"this is not audio at all" * 100)
    done = cli.run("--profile", "oa", "transcribe", str(bad))
    assert done.code == 3, done.err
    assert "could not decode the upload as audio" in done.err
    assert_one_error_line(done.err)
