"""The Tiyaro protocol's four steps with plain requests, against any server with ``url`` and
``headers`` (:class:`support.servers.Server`): upload URL, PUT, submit, poll / long-poll."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from support.samples import SAMPLE_MP3
from support.servers import Server

from whispercli.protocol import JOBS_PATH

SUBMIT = "/v1/async/ent/tiyarofs/1/openai/whisper-{model}?serviceTier=cpuflex"
SEED_CLIENT = Path(__file__).resolve().parents[1] / "seeds" / "asyncWhisper.py"
"""The seed's sample client (tests/seeds), kept verbatim."""


def _seed_input() -> dict[str, Any]:
    """The Whisper input of the seed's sample client, taken from the client itself."""
    spec = importlib.util.spec_from_file_location("seed_async_whisper", SEED_CLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    params: dict[str, Any] = module.whisper_input()
    return params


SEED_INPUT = _seed_input()
TIMEOUT = 10


def list_jobs(url: str, headers: dict[str, str], timeout: float = 30) -> list[dict[str, Any]]:
    """Every job of the server at ``url`` (``GET /v1/async/jobs``, up to its 1000), newest first;
    ``headers`` carry the key (``Server.headers``, ``Sandbox.auth()``)."""
    resp = requests.get(url + JOBS_PATH, params={"limit": 1000}, headers=headers, timeout=timeout)
    resp.raise_for_status()
    jobs: list[dict[str, Any]] = resp.json()["jobs"]
    return jobs


def upload_url(server: Server, extension: str = "mp3") -> str:
    resp = requests.post(
        f"{server.url}/v1/input/upload-url",
        params={"extension": extension},
        json={},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 201, resp.text
    url: str = resp.json()["uploadUrl"]["PUT"]
    return url


def upload(server: Server, data: bytes | Path = SAMPLE_MP3) -> str:
    """Steps 1 and 2: return the upload URL holding ``data``."""
    url = upload_url(server)
    body = data.read_bytes() if isinstance(data, Path) else data
    resp = requests.put(url, data=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return url


def submit_raw(
    server: Server,
    url: str,
    params: dict[str, Any] | None = None,
    *,
    model: str = "tiny",
    headers: dict[str, str] | None = None,
) -> requests.Response:
    return requests.post(
        server.url + SUBMIT.format(model=model),
        json={"input": params or {}, "URL": url},
        headers={**server.headers, **(headers or {})},
        timeout=TIMEOUT,
    )


def submit(server: Server, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Step 3: return the job body (the ``response`` object)."""
    resp = submit_raw(server, url, params)
    assert resp.status_code == 202, resp.text
    job: dict[str, Any] = resp.json()["response"]
    return job


def poll(server: Server, job: dict[str, Any], wait: float | None = None) -> dict[str, Any]:
    params = {"wait": wait} if wait is not None else None
    resp = requests.get(
        job["urls"]["GET"], params=params, headers=server.headers, timeout=TIMEOUT + (wait or 0)
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def wait_until(
    server: Server, job: dict[str, Any], statuses: tuple[str, ...], timeout: float = 120
) -> dict[str, Any]:
    """Long-poll until the job reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        body = poll(server, job, wait=5)
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"job stuck in {body['status']}"


def wait_done(server: Server, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    return wait_until(server, job, ("success", "failed", "cancelled"), timeout)


def webhook_secret(server: Server) -> str:
    """The server's webhook signing secret, as ``whispercli server webhook-secret`` prints it."""
    done = subprocess.run(
        [sys.executable, "-m", "whispercli", "server", "webhook-secret"],
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout.strip()
