"""The app in-process (``create_app(settings, store=..., runner=...)``) with a runner that
needs no engine: the routers, the job service and the one job body, without a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.instant_runner import InstantRunner
from support.samples import SAMPLE_MP3

from whispercli.protocol import JOB_FIELDS
from whispercli.server.app import create_app
from whispercli.server.jobs.errors import ERRORS, ServiceError
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.sqlite import SqliteStore

SUBMIT = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = ServerSettings(data_dir=tmp_path / "data", api_key_file=tmp_path / "api-key")
    store = SqliteStore(settings.data_dir)
    runner = InstantRunner(store)
    app = create_app(settings, store=store, runner=runner)
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {settings.load_api_key()}"
        assert runner.started
        yield test_client
    assert runner.stopped


def upload(client: TestClient) -> str:
    resp = client.post("/v1/input/upload-url", params={"extension": "mp3"})
    assert resp.status_code == 201, resp.text
    url: str = resp.json()["uploadUrl"]["PUT"]
    assert client.put(url, content=SAMPLE_MP3.read_bytes()).status_code == 200
    return url


def submit(client: TestClient, url: str) -> dict[str, Any]:
    resp = client.post(SUBMIT, json={"input": {"language": "en"}, "URL": url})
    assert resp.status_code == 202, resp.text
    job: dict[str, Any] = resp.json()["response"]
    return job


def test_four_steps_in_process(client: TestClient) -> None:
    job = submit(client, upload(client))
    assert set(job) <= JOB_FIELDS
    body = client.get(job["urls"]["GET"]).json()
    assert body["status"] == "success" and body["result"]["text"] == " fixed text"
    assert body["progress"] == 1 and "segments" not in body and "error" not in body
    listed = client.get("/v1/async/jobs").json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]] and "result" not in listed[0]
    health = client.get("/v1/health").json()
    assert health["queue"] == {"pending": 0, "processing": 0}


def test_an_upload_url_takes_one_file(client: TestClient) -> None:
    url = upload(client)
    again = client.put(url, content=b"a retry before submit replaces the bytes")
    assert again.status_code == 200
    assert client.put(url, content=SAMPLE_MP3.read_bytes()).status_code == 200
    submit(client, url)
    late = client.put(url, content=b"other bytes")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "upload_used"
    assert "new one" in late.json()["error"]["message"]


def test_errors_come_from_the_one_table(client: TestClient) -> None:
    resp = client.get("/v1/async/jobs/" + "0" * 32)
    assert resp.status_code == ERRORS["job_not_found"] == 404
    assert resp.json()["error"]["code"] == "job_not_found"
    resp = client.post(SUBMIT, params={"serviceTier": "nope"}, json={"URL": upload(client)})
    assert resp.status_code == ERRORS["invalid_tier"]
    assert resp.json()["error"]["code"] == "invalid_tier"
    with pytest.raises(ValueError, match="unknown error code"):
        ServiceError("no_such_code", "x")


def test_app_state_holds_only_what_the_routes_read(client: TestClient) -> None:
    state = vars(client.app.state)["_state"]  # type: ignore[attr-defined]
    assert set(state) == {"api_key", "service", "links", "runner", "last_request"}


def test_health_reports_the_runners_models_and_device(client: TestClient) -> None:
    """The runner given to create_app is what health reads: one with no engine here."""
    health = client.get("/v1/health").json()
    assert health["loadedModels"] == [] and health["device"] is None


def test_the_tier_picks_the_queue_a_new_job_is_dispatched_to(tmp_path: Path) -> None:
    import asyncio

    from whispercli.server.jobs.service import JobService
    from whispercli.server.storage.disk_blobs import DiskBlobStore
    from whispercli.server.storage.local_notify import LocalNotifier
    from whispercli.server.storage.store import JobRecord

    settings = ServerSettings(data_dir=tmp_path / "data", api_key_file=tmp_path / "api-key")
    store = SqliteStore(settings.data_dir)
    dispatched: list[tuple[str, str]] = []

    async def dispatch(job: JobRecord, queue: str) -> None:
        dispatched.append((job.id, queue))

    service = JobService(
        settings, store, DiskBlobStore(tmp_path / "blobs"), LocalNotifier(), dispatch
    )

    async def scenario() -> list[str]:
        ids = []
        for tier in ("cpuflex", "gpuflex"):
            upload_id = await service.new_upload("mp3")
            await service.receive_upload(upload_id, _one_chunk(b"bytes"), 5)
            job = await service.submit(service.validate("tiny", tier, None), upload_id, None)
            ids.append(job.id)
        return ids

    try:
        cpu_job, gpu_job = asyncio.run(scenario())
    finally:
        store.close()
    assert dispatched == [(cpu_job, "cpu"), (gpu_job, "gpu")]


async def _one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data
