"""Webhooks from a real server: signed, once per job, retried, durable across a SIGKILL, and
refused addresses answered 400 before any connect (in-process app, connect tripwire on)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from support.net import free_port, receiver
from support.protocol import SUBMIT, TIMEOUT, upload, wait_done, webhook_secret
from support.samples import SAMPLE_MP3
from support.servers import Server, ServerFactory

from whispercli.server.settings import ServerSettings

FAST_RETRY = ("--webhook-first-retry", "0.2")
FAKE_JOB = 0.1
"""Deliveries carry the job's body whatever the engine heard: the fake engine where a test
needs jobs that succeed, the real one where it needs a file that fails to decode."""


def _submit(server: Server, hook: str) -> dict[str, Any]:
    resp = requests.post(
        server.url + SUBMIT.format(model="tiny"),
        json={"input": {}, "URL": upload(server), "webhook": hook},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 202, resp.text
    job: dict[str, Any] = resp.json()["response"]
    return job


def test_one_signed_delivery_per_job(server_factory: ServerFactory) -> None:
    server = server_factory.start(*FAST_RETRY, fake_engine=FAKE_JOB)
    secret = webhook_secret(server)
    with receiver() as rx:
        jobs = [_submit(server, rx.url), _submit(server, rx.url + "?tag=2")]
        ended = [wait_done(server, job) for job in jobs]
        assert rx.wait(2, 30)
        assert not rx.wait(3, 3), "more than one delivery per job"
    by_id = {}
    for got in rx.received:
        body = Webhook(secret).verify(got.body, got.headers)
        by_id[body["id"]] = (body, got)
    assert set(by_id) == {job["id"] for job in jobs}
    for done in ended:
        body, _ = by_id[done["id"]]
        assert body["status"] == done["status"] == "success"
        assert body["result"]["text"] == done["result"]["text"]
    assert by_id[jobs[1]["id"]][1].path == "/hook?tag=2"
    ids = {got.headers["webhook-id"] for got in rx.received}
    assert len(ids) == 2 and all(i.startswith("msg_") for i in ids)


def test_failed_jobs_are_delivered_too(server_factory: ServerFactory) -> None:
    server = server_factory.start(*FAST_RETRY)
    with receiver() as rx:
        resp = requests.post(
            server.url + SUBMIT.format(model="tiny"),
            json={"URL": upload(server, b"this is not audio" * 100), "webhook": rx.url},
            headers=server.headers,
            timeout=TIMEOUT,
        )
        assert resp.status_code == 202, resp.text
        failed = wait_done(server, resp.json()["response"])
        assert rx.wait(1, 30)
    body = Webhook(webhook_secret(server)).verify(rx.received[0].body, rx.received[0].headers)
    assert body["id"] == failed["id"] and body["status"] == "failed" and body["error"]


def test_receiver_down_three_times_then_up_gets_it_once(server_factory: ServerFactory) -> None:
    server = server_factory.start(*FAST_RETRY, fake_engine=FAKE_JOB)
    with receiver([503, 500, 502]) as rx:
        job = _submit(server, rx.url)
        done = wait_done(server, job)
        assert done["status"] == "success"  # the job's status never waited for the receiver
        assert rx.wait(4, 30)
        assert not rx.wait(5, 3), "delivered again after a 2xx"
    assert len({got.headers["webhook-id"] for got in rx.received}) == 1
    assert len({got.body for got in rx.received}) == 1
    Webhook(webhook_secret(server)).verify(rx.received[-1].body, rx.received[-1].headers)


def test_delivery_survives_a_sigkill(server_factory: ServerFactory) -> None:
    port = free_port()  # nothing listens there until the server is dead
    first = server_factory.start(*FAST_RETRY, fake_engine=FAKE_JOB)
    job = _submit(first, f"http://127.0.0.1:{port}/hook")
    assert wait_done(first, job)["status"] == "success"
    first.stop(kill=True)
    with receiver(port=port) as rx:
        second = server_factory.start(*FAST_RETRY, dirs_from=first, fake_engine=FAKE_JOB)
        assert rx.wait(1, 30), "the delivery was lost with the server"
        assert not rx.wait(2, 3)
        body = Webhook(webhook_secret(second)).verify(rx.received[0].body, rx.received[0].headers)
        assert body["id"] == job["id"] and body["status"] == "success"


# -- refused addresses: a 400 at submit, before any connect --------------------------------------
@pytest.fixture
def app_client(tmp_path: Path, no_connect: list[object], names: Any) -> TestClient:
    names({"lan.test": ["192.168.7.7"]})
    settings = ServerSettings(
        data_dir=tmp_path / "data", api_key_file=tmp_path / "config" / "api-key"
    )
    from whispercli.server.app import create_app

    client = TestClient(create_app(settings))  # no lifespan: no runner, no engine
    client.headers["Authorization"] = "Bearer " + settings.load_api_key()
    return client


REFUSED = ("http://10.0.0.1/hook", "http://169.254.169.254/", "http://lan.test/x", "ftp://h/")


def _tiyaro_upload(client: TestClient) -> str:
    put_url = client.post("/v1/input/upload-url").json()["uploadUrl"]["PUT"]
    assert client.put(put_url, content=SAMPLE_MP3.read_bytes()).status_code == 200
    return str(put_url)


@pytest.mark.parametrize("hook", REFUSED)
def test_refused_webhooks_are_400_before_any_connect(
    app_client: TestClient, no_connect: list[object], hook: str
) -> None:
    url = _tiyaro_upload(app_client)
    resp = app_client.post(SUBMIT.format(model="tiny"), json={"URL": url, "webhook": hook})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_webhook"
    eden = app_client.post(
        "/v2/audio/speech_to_text_async",
        data={"providers": "whisper", "webhook_receiver": hook},
        files={"file": ("a.mp3", SAMPLE_MP3.read_bytes())},
    )
    assert eden.status_code == 400, eden.text
    assert list(eden.json()["error"]["message"]) == ["webhook_receiver"]
    fetched = app_client.post(
        "/v2/audio/speech_to_text_async/", json={"providers": "whisper", "file_url": hook}
    )
    assert fetched.status_code == 400, fetched.text
    assert list(fetched.json()["error"]["message"]) == ["file_url"]
    assert app_client.get("/v1/async/jobs").json()["jobs"] == []
    assert no_connect == []
