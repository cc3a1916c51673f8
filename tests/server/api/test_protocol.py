"""The four steps and the extensions, with plain HTTP against a real server."""

from __future__ import annotations

import re
import time

import pytest
import requests
from support.protocol import (
    SEED_INPUT,
    TIMEOUT,
    poll,
    submit,
    submit_raw,
    upload,
    upload_url,
    wait_done,
)
from support.samples import SAMPLE_TXT, assert_sample
from support.servers import Server

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(scope="module")
def server(fake_server: Server) -> Server:
    """Codes, shapes, auth, signatures and long-poll timing: the fake engine's server. The
    four steps' test reads a transcript, from the real one."""
    return fake_server


def test_four_steps_codes_and_shapes(real_server: Server) -> None:
    server = real_server
    resp = requests.post(
        f"{server.url}/v1/input/upload-url?extension=mp3",
        json={},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 201
    assert list(resp.json()) == ["uploadUrl"]
    put_url = resp.json()["uploadUrl"]["PUT"]
    assert put_url.startswith(server.url + "/v1/input/uploads/")
    assert "expires=" in put_url and "sig=" in put_url

    data = (SAMPLE_TXT.parent / "sample.mp3").read_bytes()
    resp = requests.put(put_url, data=data, timeout=TIMEOUT)  # no auth header
    assert resp.status_code == 200
    assert resp.json() == {"size": len(data)}

    resp = submit_raw(server, put_url, SEED_INPUT)
    assert resp.status_code == 202
    assert list(resp.json()) == ["response"]
    job = resp.json()["response"]
    assert {"id", "status", "model", "acceptedAt", "startedAt", "completedAt", "urls"} <= set(job)
    assert job["status"] in ("accepted", "pending", "processing")
    assert job["model"] == "tiny"
    assert ISO.match(job["acceptedAt"])
    assert job["urls"]["GET"].startswith(f"{server.url}/v1/async/jobs/{job['id']}?")

    body = wait_done(server, job)
    assert body["status"] == "success", body
    for key in ("id", "status", "model", "acceptedAt", "startedAt", "completedAt", "result"):
        assert key in body
    assert body["id"] == job["id"]
    assert ISO.match(body["startedAt"]) and ISO.match(body["completedAt"])
    assert body["acceptedAt"] <= body["startedAt"] <= body["completedAt"]
    assert body["progress"] == 1.0
    assert "error" not in body and "segments" not in body
    result = body["result"]
    assert set(result) >= {"text", "segments", "language", "duration"}
    assert result["language"] == "en"
    assert abs(result["duration"] - 11.4) < 0.2
    seg = result["segments"][0]
    assert {"id", "start", "end", "text"} <= set(seg)
    assert result["text"] == "".join(s["text"] for s in result["segments"])
    assert_sample(result["text"])

    plain = requests.get(job["urls"]["GET"], headers=server.headers, timeout=TIMEOUT)
    assert plain.status_code == 200 and plain.json()["result"] == result
    log = server.log()  # paths are logged, never signatures, keys or transcripts
    assert "sig=" not in log and server.api_key not in log
    assert result["segments"][0]["text"].strip() not in log


def test_health(server: Server) -> None:
    resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok"
    assert {"tiny", "tiny.en"} <= set(body["models"])
    assert set(body["queue"]) == {"pending", "processing"}
    assert body["longPoll"] is True
    assert body["maxUploadBytes"] == 4 * 1024**3
    assert body["version"]


def test_wrong_or_missing_key_is_401_everywhere(server: Server) -> None:
    put_url = upload(server)
    job = submit(server, put_url)
    calls = [
        ("GET", "/v1/health", None),
        ("POST", "/v1/input/upload-url?extension=mp3", {}),
        ("POST", "/v1/async/ent/tiyarofs/1/openai/whisper-tiny", {"input": {}, "URL": put_url}),
        ("GET", "/v1/async/jobs", None),
        ("POST", f"/v1/async/jobs/{job['id']}/cancel", None),
        ("DELETE", f"/v1/async/jobs/{job['id']}", None),
    ]
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        for method, path, body in calls:
            resp = requests.request(
                method, server.url + path, json=body, headers=headers, timeout=TIMEOUT
            )
            assert resp.status_code == 401, (method, path, resp.text)
            assert resp.json()["error"]["code"] == "unauthorized"
            assert "Bearer" in resp.json()["error"]["message"]
        resp = requests.get(job["urls"]["GET"], headers=headers, timeout=TIMEOUT)
        assert resp.status_code == 401
    assert wait_done(server, job)["status"] == "success"  # untouched by the refused calls
    assert server.api_key not in server.log()


def test_tampered_urls_are_403(server: Server) -> None:
    put_url = upload_url(server)
    other = upload_url(server)
    other_id = other.split("/uploads/")[1].split("?")[0]
    tampered = [
        put_url[:-1] + ("0" if put_url[-1] != "0" else "1"),  # signature changed
        re.sub(r"expires=(\d+)", lambda m: f"expires={int(m[1]) + 3600}", put_url),
        re.sub(r"/uploads/[0-9a-f]+", f"/uploads/{other_id}", put_url),  # another upload
        put_url.split("?")[0],  # unsigned
    ]
    for url in tampered:
        resp = requests.put(url, data=b"abc", timeout=TIMEOUT)
        assert resp.status_code == 403, url
        message = resp.json()["error"]["message"]
        assert "signature" in message or "signed" in message
        assert "Traceback" not in resp.text
    job = submit(server, upload(server))
    poll_url = job["urls"]["GET"]
    bad = poll_url[:-1] + ("0" if poll_url[-1] != "0" else "1")
    resp = requests.get(bad, headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 403
    assert resp.json()["error"]["code"] == "bad_signature"


def test_idempotency_key_returns_the_same_job(server: Server) -> None:
    put_url = upload(server)
    key = {"Idempotency-Key": f"test-{time.monotonic_ns()}"}
    first = submit_raw(server, put_url, headers=key)
    second = submit_raw(server, put_url, headers=key)
    assert first.status_code == second.status_code == 202
    assert first.json()["response"]["id"] == second.json()["response"]["id"]
    third = submit_raw(server, put_url)
    assert third.json()["response"]["id"] != first.json()["response"]["id"]
    assert wait_done(server, first.json()["response"])["status"] == "success"
    again = submit_raw(server, put_url, headers=key)  # after it finished: still the same job
    assert again.status_code == 202
    assert again.json()["response"]["id"] == first.json()["response"]["id"]
    assert again.json()["response"]["status"] == "success"


def test_list_jobs(server: Server) -> None:
    job = submit(server, upload(server))
    wait_done(server, job)
    resp = requests.get(f"{server.url}/v1/async/jobs", headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 200
    jobs = resp.json()["jobs"]
    assert jobs[0]["id"] == job["id"]  # newest first
    assert all("result" not in j for j in jobs)
    assert all(j["urls"]["GET"].startswith(server.url) for j in jobs)
    accepted = [j["acceptedAt"] for j in jobs]
    assert accepted == sorted(accepted, reverse=True)
    resp = requests.get(
        f"{server.url}/v1/async/jobs",
        params={"status": "success", "limit": 1},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert [j["status"] for j in resp.json()["jobs"]] == ["success"]
    resp = requests.get(
        f"{server.url}/v1/async/jobs",
        params={"status": "bogus"},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert resp.status_code == 400


def test_delete_removes_job_and_files(server: Server) -> None:
    job = submit(server, upload(server))
    wait_done(server, job)
    result_file = server.data_dir / "results" / f"{job['id']}.json"
    uploads_before = set((server.data_dir / "uploads").iterdir())
    assert result_file.exists()
    resp = requests.delete(
        f"{server.url}/v1/async/jobs/{job['id']}", headers=server.headers, timeout=TIMEOUT
    )
    assert resp.status_code == 204
    assert not result_file.exists()
    assert len(set((server.data_dir / "uploads").iterdir())) == len(uploads_before) - 1
    resp = requests.get(job["urls"]["GET"], headers=server.headers, timeout=TIMEOUT)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "job_not_found"
    again = requests.delete(
        f"{server.url}/v1/async/jobs/{job['id']}", headers=server.headers, timeout=TIMEOUT
    )
    assert again.status_code == 404


def test_cancel_finished_job_is_409_and_unknown_is_404(server: Server) -> None:
    job = submit(server, upload(server))
    wait_done(server, job)
    resp = requests.post(
        f"{server.url}/v1/async/jobs/{job['id']}/cancel", headers=server.headers, timeout=TIMEOUT
    )
    assert resp.status_code == 409
    assert "already ended" in resp.json()["error"]["message"]
    missing = "0" * 32
    for method, path in (
        ("POST", f"/v1/async/jobs/{missing}/cancel"),
        ("GET", f"/v1/async/jobs/{missing}"),
        ("DELETE", f"/v1/async/jobs/{missing}"),
    ):
        resp = requests.request(method, server.url + path, headers=server.headers, timeout=5)
        assert resp.status_code == 404, path


def test_poll_without_signature_needs_only_the_key(server: Server) -> None:
    job = submit(server, upload(server))
    body = wait_done(server, job)
    resp = requests.get(
        f"{server.url}/v1/async/jobs/{job['id']}", headers=server.headers, timeout=TIMEOUT
    )
    assert resp.status_code == 200
    assert resp.json()["result"] == body["result"]


def test_long_poll_returns_promptly_on_change(server: Server) -> None:
    job = submit(server, upload(server))
    started = time.monotonic()
    body = poll(server, job, wait=30)
    elapsed = time.monotonic() - started
    assert body["status"] != job["status"] or body["status"] == "success"
    assert elapsed < 15  # well before the 30 s deadline: it returned on the change
    done = wait_done(server, job)
    assert done["status"] == "success"
    started = time.monotonic()
    assert poll(server, job, wait=30)["status"] == "success"  # terminal: no waiting at all
    assert time.monotonic() - started < 1.0


def test_long_poll_until_done_skips_intermediate_changes(server: Server) -> None:
    job = submit(server, upload(server))
    assert job["status"] == "pending"
    started = time.monotonic()
    resp = requests.get(
        job["urls"]["GET"],
        params={"wait": 30, "until": "done"},
        headers=server.headers,
        timeout=TIMEOUT + 30,
    )
    assert resp.status_code == 200
    assert resp.json()["status"] == "success"  # not the pending -> processing change
    assert time.monotonic() - started < 25
    bad = requests.get(
        job["urls"]["GET"],
        params={"wait": 1, "until": "later"},
        headers=server.headers,
        timeout=TIMEOUT,
    )
    assert bad.status_code == 400 and "until" in bad.json()["error"]["message"]
