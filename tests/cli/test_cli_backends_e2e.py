"""The CLI with an Eden AI and an OctoAI profile against the real embedded server's Eden AI v2
and OctoAI routes (issue 12): transcribe, submit, wait last, status, jobs list, cancel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cli import Cli, assert_one_error_line
from support.samples import SAMPLE_MP3, SAMPLE_TXT
from wer import wer


@pytest.fixture(scope="module")
def profiles_cli(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    cli = Cli(tmp_path_factory.mktemp("cli"))
    (Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").write_text(
        f"""
[profiles.eden]
url = "{server.url}/v2"
backend = "edenai"
api_key = "{server.api_key}"
providers = "whisper"

[profiles.octo]
url = "{server.url}"
backend = "octoai"
api_key = "{server.api_key}"
"""
    )
    return cli


def test_eden_profile_on_the_embedded_server(profiles_cli: Cli) -> None:
    done = profiles_cli.run(
        "--profile", "eden", "transcribe", "-l", "en", "--json", str(SAMPLE_MP3)
    )
    assert done.code == 0, done.err
    [entry] = json.loads(done.out)
    assert wer(SAMPLE_TXT.read_text(), entry["result"]["text"]) <= 0.10
    assert entry["result"]["provider"] == "whisper" and entry["result"]["segments"]
    first = entry["id"]
    assert entry["result"]["segments"][0]["speaker"] == 1  # one speaker: no labels in text
    done = profiles_cli.run("--profile", "eden", "submit", "-q", "--force", str(SAMPLE_MP3))
    job_id = done.out.strip()
    assert done.code == 0 and job_id != first, done.err
    done = profiles_cli.run("wait", "last")  # resumed with the saved profile and backend
    assert done.code == 0, done.err
    assert wer(SAMPLE_TXT.read_text(), done.out) <= 0.10 and "[SPEAKER" not in done.out
    assert profiles_cli.run("status", "-q", "last").out.strip() == "success"
    listed = profiles_cli.run("--profile", "eden", "jobs", "list", "--remote", "-q").out.split()
    assert {first, job_id} <= set(listed)
    done = profiles_cli.run("jobs", "cancel", job_id)
    assert done.code == 2 and "Eden AI cannot cancel" in done.err, done.err
    assert_one_error_line(done.err)


def test_octoai_profile_on_the_embedded_server(profiles_cli: Cli) -> None:
    done = profiles_cli.run("--profile", "octo", "transcribe", "-l", "en", str(SAMPLE_MP3))
    assert done.code == 0, done.err
    assert wer(SAMPLE_TXT.read_text(), done.out) <= 0.10
    job_id = profiles_cli.run(
        "--profile", "octo", "submit", "-q", "--force", str(SAMPLE_MP3)
    ).out.strip()
    done = profiles_cli.run("wait", "last", "-f", "srt")
    assert done.code == 0, done.err
    assert done.out.startswith("1\n00:00:00,000 --> ")
    assert profiles_cli.run("status", "-q", job_id).out.strip() == "success"
    saved = json.loads(profiles_cli.run("jobs", "list", "--json").out)
    assert saved[0]["id"] == job_id and saved[0]["backend"] == "octoai"
    done = profiles_cli.run("jobs", "cancel", job_id)
    assert done.code == 2 and "OctoAI cannot cancel" in done.err, done.err


def test_octoai_failed_job_on_the_embedded_server_exits_3(
    profiles_cli: Cli, tmp_path: Path
) -> None:
    bad = tmp_path / "noise.mp3"
    bad.write_bytes(b"\x00not audio at all" * 64)
    done = profiles_cli.run("--profile", "octo", "transcribe", str(bad))
    assert done.code == 3, done.err
    assert_one_error_line(done.err)
    assert "could not decode" in done.err
