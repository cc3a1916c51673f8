"""Helpers for the server tests: the protocol's four steps with plain requests, and long
speech made on the fly with espeak-ng."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from local_server import SAMPLE_MP3, ServerHandle

SUBMIT = "/v1/async/ent/tiyarofs/1/openai/whisper-{model}?serviceTier=cpuflex"
SEED_CLIENT = Path(__file__).resolve().parents[1] / "seeds" / "asyncWhisper.py"


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


def upload_url(server: ServerHandle, extension: str = "mp3") -> str:
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


def upload(server: ServerHandle, data: bytes | Path = SAMPLE_MP3) -> str:
    """Steps 1 and 2: return the upload URL holding ``data``."""
    url = upload_url(server)
    body = data.read_bytes() if isinstance(data, Path) else data
    resp = requests.put(url, data=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    return url


def submit_raw(
    server: ServerHandle,
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


def submit(server: ServerHandle, url: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Step 3: return the job body (the ``response`` object)."""
    resp = submit_raw(server, url, params)
    assert resp.status_code == 202, resp.text
    job: dict[str, Any] = resp.json()["response"]
    return job


def poll(server: ServerHandle, job: dict[str, Any], wait: float | None = None) -> dict[str, Any]:
    params = {"wait": wait} if wait is not None else None
    resp = requests.get(
        job["urls"]["GET"], params=params, headers=server.headers, timeout=TIMEOUT + (wait or 0)
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def wait_until(
    server: ServerHandle, job: dict[str, Any], statuses: tuple[str, ...], timeout: float = 120
) -> dict[str, Any]:
    """Long-poll until the job reaches one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        body = poll(server, job, wait=5)
        if body["status"] in statuses:
            return body
        assert time.monotonic() < deadline, f"job stuck in {body['status']}"


def wait_done(server: ServerHandle, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    return wait_until(server, job, ("success", "failed", "cancelled"), timeout)


LONG_TEXT = """\
The morning train to the coast leaves from platform four at a quarter past eight.
Our library opens late on Thursdays, so students can return their books after work.
A small bakery on the corner sells warm bread, apple pies and strong black coffee.
The committee agreed to repaint the old bridge before the winter storms arrive.
Please remember to water the tomato plants and close the greenhouse door tonight.
Several volunteers cleaned the river bank and counted more than forty kinds of birds.
The museum will show a collection of maps drawn by sailors three hundred years ago.
After the concert, the orchestra packed their instruments into a long blue truck.
My neighbour is building a wooden boat in his garage and hopes to sail it in June.
The hospital opened a new wing with bright rooms, quiet gardens and a children's ward.
Farmers in the valley expect a good harvest of wheat, barley and sweet potatoes.
Engineers tested the solar panels on the roof and found they work well in cloudy weather.
"""
READINGS = (("en", 175), ("en-us", 150), ("en+f3", 190), ("en-gb-x-rp", 160), ("en+m3", 140))
"""(espeak-ng voice, words per minute): each reading of LONG_TEXT is about a minute."""


def webhook_secret(server: ServerHandle) -> str:
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


def make_long_clip(folder: Path, readings: int) -> Path:
    """``LONG_TEXT`` read ``readings`` times by different voices, as 16 kHz mono WAV."""
    out = folder / f"long-{readings}.wav"
    if out.exists():
        return out
    parts = []
    for i, (voice, wpm) in enumerate(READINGS[i % len(READINGS)] for i in range(readings)):
        part = folder / f"reading-{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(part), LONG_TEXT],
            check=True,
            capture_output=True,
        )
        parts.append(str(part))
    subprocess.run(
        ["sox", *parts, "-r", "16000", "-c", "1", str(out)], check=True, capture_output=True
    )
    return out
