"""Requests the server holds open while a job runs notice a client that goes away: OctoAI's
synchronous ``/predict`` cancels its job (nobody would read the answer) and a Tiyaro long-poll
ends early. (OpenAI's audio routes: tests/server/api/test_openai_sdk.py.)

Before the request log was plain ASGI middleware, Starlette's ``BaseHTTPMiddleware`` hid the
disconnect from the routes: the job ran to its end and the long-poll to its deadline.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.procs import until
from support.protocol import list_jobs, submit, upload
from support.samples import SAMPLE_MP3
from support.servers import Server, serve_module

from whispercli.protocol import JOB_CANCEL_PATH

FAKE_SECONDS = 20.0
"""Long enough that a job which ran to its end, or a poll that ran to its deadline, shows."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_module(tmp_path_factory, fake_engine=FAKE_SECONDS)


def _jobs(server: Server) -> list[dict[str, Any]]:
    return list_jobs(server.url, server.headers)


def test_a_synchronous_predict_whose_client_goes_away_cancels_its_job(server: Server) -> None:
    before = {job["id"] for job in _jobs(server)}
    audio = base64.b64encode(SAMPLE_MP3.read_bytes()).decode()
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            server.url + "/predict", json={"audio": audio}, headers=server.headers, timeout=1.5
        )
    (job,) = [job for job in _jobs(server) if job["id"] not in before]

    def cancelled() -> bool:
        return any(j["id"] == job["id"] and j["status"] == "cancelled" for j in _jobs(server))

    until(cancelled, timeout=5)  # the job would have run FAKE_SECONDS
    assert "/predict 499" in server.log()


def test_a_long_poll_whose_client_goes_away_ends(server: Server) -> None:
    job = submit(server, upload(server))
    with pytest.raises(requests.ReadTimeout):
        requests.get(
            job["urls"]["GET"],
            params={"wait": 50, "until": "done"},
            headers=server.headers,
            timeout=1.0,
        )
    line = re.compile(rf"GET /v1/async/jobs/{job['id']} 200 ([0-9.]+) ms")
    match = until(lambda: line.search(server.log()), timeout=10)  # it would hold FAKE_SECONDS
    assert float(match.group(1)) < 8000
    cancel = server.url + JOB_CANCEL_PATH.format(job_id=job["id"])
    assert requests.post(cancel, headers=server.headers, timeout=10).status_code == 200
