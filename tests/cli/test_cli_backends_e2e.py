"""The CLI with an Eden AI and an OctoAI profile against the real embedded server's Eden AI v2
and OctoAI routes (issue 12): transcribe, submit, wait last, status, jobs list, cancel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from support.cli import Cli, assert_one_error_line
from support.samples import SAMPLE_MP3, assert_sample


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
    assert_sample(entry["result"]["text"])
    assert entry["result"]["provider"] == "whisper" and entry["result"]["segments"]
    first = entry["id"]
    assert entry["result"]["segments"][0]["speaker"] == 1  # one speaker: no labels in text
    done = profiles_cli.run("--profile", "eden", "submit", "-q", "--force", str(SAMPLE_MP3))
    job_id = done.out.strip()
    assert done.code == 0 and job_id != first, done.err
    done = profiles_cli.run("wait", "last")  # resumed with the saved profile and backend
    assert done.code == 0, done.err
    assert_sample(done.out)
    assert "[SPEAKER" not in done.out
    assert profiles_cli.run("status", "-q", "last").out.strip() == "success"
    listed = profiles_cli.run("--profile", "eden", "jobs", "list", "--remote", "-q").out.split()
    assert {first, job_id} <= set(listed)
    done = profiles_cli.run("jobs", "cancel", job_id)
    assert done.code == 2 and "Eden AI cannot cancel" in done.err, done.err
    assert_one_error_line(done.err)


def test_octoai_profile_on_the_embedded_server(profiles_cli: Cli) -> None:
    done = profiles_cli.run("--profile", "octo", "transcribe", "-l", "en", str(SAMPLE_MP3))
    assert done.code == 0, done.err
    assert_sample(done.out)
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


# -- issue 19 --------------------------------------------------------------------------------


def test_eden_model_flag_runs_that_model_and_the_job_records_it(profiles_cli: Cli) -> None:
    """Item 3: `-m NAME` is the embedded server's provider `whisper/NAME`; a model it lacks
    fails (it used to run tiny and exit 0), and the saved job says what ran."""
    missing = profiles_cli.run(
        "--profile", "eden", "transcribe", "-m", "nosuchmodel", str(SAMPLE_MP3)
    )
    assert missing.code == 1, missing.err
    assert_one_error_line(missing.err)
    assert "model 'nosuchmodel' is not installed" in missing.err, missing.err
    done = profiles_cli.run(
        "--profile", "eden", "submit", "-q", "--force", "-m", "tiny", str(SAMPLE_MP3)
    )
    assert done.code == 0, done.err
    job_id = done.out.strip()
    assert profiles_cli.run("wait", job_id).code == 0
    [saved] = [
        j for j in json.loads(profiles_cli.run("jobs", "list", "--json").out) if j["id"] == job_id
    ]
    assert saved["model"] == "whisper/tiny" and saved["options"]["providers"] == ["whisper/tiny"]
    shown = json.loads(profiles_cli.run("jobs", "show", "--json", job_id).out)
    assert shown["saved"]["model"] == shown["server"]["model"] == "whisper/tiny"


def test_a_profile_at_the_local_default_url_uses_the_local_key_file(
    server: Any, tmp_path: Path
) -> None:
    """Item 10: README's `octo` and `eden` profiles (url = the embedded server, no key) use
    the local key file; another URL without a key names that file in its hint."""
    cli = Cli(tmp_path / "cli")
    config_dir = Path(cli.env["WHISPERCLI_CONFIG_DIR"])
    key_file = config_dir / "api-key"
    shutil.copyfile(server.config_dir / "api-key", key_file)
    key_file.chmod(0o600)
    (config_dir / "config.toml").write_text(
        f"""
[profiles.octo]
backend = "octoai"
url = "http://127.0.0.1:{server.port}"

[profiles.eden]
backend = "edenai"
url = "http://localhost:{server.port}/v2"
providers = "whisper"

[profiles.lab]
url = "http://127.0.0.1:9"
"""
    )
    local = {"WHISPERCLI_LOCAL_PORT": str(server.port)}
    for profile in ("octo", "eden"):
        done = cli.run("--profile", profile, "transcribe", "--force", str(SAMPLE_MP3), **local)
        assert done.code == 0, (profile, done.err)
        assert_sample(done.out)
    done = cli.run("--profile", "lab", "status", "0123456789abcdef0123456789abcdef", **local)
    assert done.code == 5, done.err
    assert "no API key for profile 'lab'" in done.err
    assert str(key_file) in done.err and "--profile lab" in done.err
