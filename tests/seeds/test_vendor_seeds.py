"""The Eden AI and OctoAI seed samples against the embedded server (see the two seed files)."""

from __future__ import annotations

import ast
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import support.cache as cache
from standardwebhooks import Webhook
from support.net import receiver
from support.protocol import webhook_secret
from support.samples import SAMPLE_MP3, assert_sample
from support.servers import Server

HERE = Path(__file__).parent
EDEN_SEED = HERE / "edenai_seed.py"
OCTO_SEED = HERE / "octoai_seed.py"


def test_eden_seed_polls_the_transcript_and_its_receiver_gets_it(
    server: Server, tmp_path: Path
) -> None:
    shutil.copy(
        SAMPLE_MP3, tmp_path / "audio.wav"
    )  # the seed opens "audio.wav" (decoded by content)
    with receiver() as rx:
        env = {
            **os.environ,
            "EDENAI_BASE_URL": server.url + "/v2",
            "EDENAI_API_KEY": server.api_key,
            "EDENAI_WEBHOOK": rx.url,
        }
        proc = subprocess.run(
            [sys.executable, str(EDEN_SEED)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=180,
        )
        print(proc.stdout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        first, *_ = proc.stdout.splitlines()
        launched = ast.literal_eval(first)
        assert set(launched) == {"public_id"}
        transcript = proc.stdout.split("-- transcript --\n", 1)[1]
        assert_sample(transcript)
        assert rx.wait(1, 30), "the webhook_receiver got nothing"
    [hook] = rx.received
    body = Webhook(webhook_secret(server)).verify(hook.body, hook.headers)
    assert body["public_id"] == launched["public_id"] and body["status"] == "finished"
    assert body["results"]["whisper"]["text"] == transcript.strip()
    assert body["results"]["whisper"]["diarization"]["entries"][0]["speaker"] == 1


OCTOAI_SDK = "octoai-sdk==0.4.0"
"""The last octoai-sdk with ``Audio.audio_b64`` (the seed's API). Its pins are stale (pillow<10
has no wheel for new Pythons), so it is installed without them; what it imports (httpx,
pydantic, numpy, pillow, pyyaml) comes with the ``test`` extra."""


@pytest.fixture(scope="session")
def octoai_path() -> str:
    """A folder holding the SDK (``pip install --no-deps --target``, once per machine: see
    support.cache), for the seed's PYTHONPATH."""
    fill = cache.pip("install", "-q", "--no-deps", "--target", "{dir}", OCTOAI_SDK)
    return str(cache.cached(OCTOAI_SDK.replace("==", "-"), fill))


def _run_octo(
    server: Server, audio: Path, sdk: str, expected: str = ""
) -> subprocess.CompletedProcess[str]:
    """The seed with the SDK on its path; ``expected``: the phrase its assert looks for."""
    env = {
        **os.environ,
        "OCTOAI_BASE_URL": server.url,
        "OCTOAI_TOKEN": server.api_key,
        "OCTOAI_EXPECTED": expected,
        "PYTHONPATH": os.pathsep.join(filter(None, [sdk, os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, str(OCTO_SEED), str(audio)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_octoai_seed_runs_with_the_real_sdk(server: Server, octoai_path: str) -> None:
    # What the seed's assert expects: the first segment this server's engine makes of the same
    # audio and inputs (a synchronous predict), not one CPU's words.
    same = requests.post(
        server.url + "/predict",
        json={"language": "en", "task": "transcribe", "audio": _b64(SAMPLE_MP3)},
        headers=server.headers,
        timeout=120,
    )
    assert same.status_code == 200, same.text
    first = same.json()["response"]["segments"][0]["text"].strip()
    assert_sample(same.json()["transcription"])
    proc = _run_octo(server, SAMPLE_MP3, octoai_path, expected=first)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "AssertionError" not in proc.stderr


def test_octoai_seed_raises_when_the_job_fails(
    server: Server, tmp_path: Path, octoai_path: str
) -> None:
    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text(json.dumps({"this": "is not audio"}) * 50)
    proc = _run_octo(server, not_audio, octoai_path)  # must end (raise), not poll for ever
    assert proc.returncode != 0
    assert "OctoAIClientError" in proc.stderr, proc.stderr[-2000:]
    assert "could not decode" in proc.stderr
