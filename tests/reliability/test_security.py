"""Security: keys on every endpoint, signed URLs that open only what they were made for and
expire, private files, no secrets or transcripts in logs, and a warning on a public bind."""

from __future__ import annotations

import itertools
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from support.figures import bump, record
from support.net import free_port
from support.samples import SAMPLE_MP3
from support.sandbox import Sandbox, run_cli
from support.servers import BOTH_BACKENDS, Server

pytestmark = [pytest.mark.reliability, pytest.mark.fake_engine(0.1)]
"""Keys, signatures, file modes and logs, not words: the jobs run on the fake engine (its
transcript is as much a secret to keep out of the logs as a real one)."""

FAKE_ID = "0" * 32


def _bad_auth(key: str) -> dict[str, dict[str, str]]:
    """Ways to not quite send the key, by a short label."""
    return {
        "no key": {},
        "wrong key": {"Authorization": "Bearer not-the-key"},
        "empty bearer": {"Authorization": "Bearer "},
        "basic auth": {"Authorization": "Basic dXNlcjpwYXNz"},
        "key without scheme": {"Authorization": key},
        "key in another header": {"X-API-Key": key},
    }


def _operations(sandbox: Sandbox) -> list[tuple[str, str, dict[str, Any]]]:
    schema = requests.get(sandbox.url + "/openapi.json", timeout=10).json()
    ops = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            concrete = path.replace("{job_id}", FAKE_ID).replace("{upload_id}", FAKE_ID)
            concrete = concrete.replace("{response_id}", FAKE_ID).replace("{public_id}", FAKE_ID)
            concrete = concrete.replace("{model}", "tiny")
            ops.append((method.upper(), concrete, op))
    return ops


@BOTH_BACKENDS
def test_every_endpoint_needs_the_key(live_server: Server, sandbox: Sandbox) -> None:
    key = sandbox.key()
    headers_for = _bad_auth(key)
    ops = _operations(sandbox)
    checked = 0
    for method, path, op in ops:
        if path.startswith("/v1/input/uploads/"):
            assert not op.get("security"), "the upload PUT is signed, not keyed"
            continue
        assert op.get("security"), f"{method} {path} is documented without security"
        for label, headers in headers_for.items():
            for query in ("", f"?api_key={key}&key={key}"):
                r = requests.request(
                    method, sandbox.url + path + query, headers=headers, json={}, timeout=10
                )
                checked += 1
                assert r.status_code == 401, f"{method} {path}{query} with {label}: {r.status_code}"
                assert r.json()["error"]["code"], r.text
                assert key not in r.text
    bump("security", "unauthenticated_requests", checked)
    record("security: auth", operations=len(ops), unauthenticated_requests_all_401=checked)
    assert checked >= 7 * len(headers_for) * 2


def _signed(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}


def _upload_url(sandbox: Sandbox) -> str:
    r = requests.post(
        sandbox.url + "/v1/input/upload-url?extension=mp3", headers=sandbox.auth(), timeout=10
    )
    assert r.status_code == 201, r.text
    return str(r.json()["uploadUrl"]["PUT"])


def test_a_signature_opens_only_its_own_upload_and_job(
    live_server: Server, sandbox: Sandbox
) -> None:
    a_path, a_query = _signed(_upload_url(sandbox))
    b_path, b_query = _signed(_upload_url(sandbox))
    tries = {
        "A's signature on B": (b_path, a_query),
        "B's signature on A": (a_path, b_query),
        "A's signature, later expiry": (
            a_path,
            {**a_query, "expires": str(int(a_query["expires"]) + 60)},
        ),
        "A's signature, one hex digit changed": (
            a_path,
            {**a_query, "sig": ("1" if a_query["sig"][0] != "1" else "2") + a_query["sig"][1:]},
        ),
        "no signature": (a_path, {}),
    }
    for label, (path, query) in tries.items():
        r = requests.put(sandbox.url + path, params=query, data=b"x" * 100, timeout=10)
        bump("security", "forged_urls")
        assert r.status_code == 403, f"{label}: {r.status_code} {r.text}"
        assert query.get("sig", "-") not in r.text
    # A poll URL's signature is bound to its job too.
    ok = requests.put(
        sandbox.url + a_path, params=a_query, data=SAMPLE_MP3.read_bytes(), timeout=30
    )
    assert ok.status_code == 200, ok.text
    submit = requests.post(
        sandbox.url + "/v1/async/ent/tiyarofs/1/openai/whisper-tiny",
        json={
            "input": {},
            "URL": sandbox.url + a_path + "?" + "&".join(f"{k}={v}" for k, v in a_query.items()),
        },
        headers=sandbox.auth(),
        timeout=10,
    )
    assert submit.status_code == 202, submit.text
    poll_path, poll_query = _signed(submit.json()["response"]["urls"]["GET"])
    for path, query in (
        (poll_path.replace(poll_path[-32:], FAKE_ID), poll_query),  # another job's path
        (poll_path, {**poll_query, "expires": str(int(poll_query["expires"]) - 1)}),
        (poll_path, a_query),  # the upload's signature on the poll path
    ):
        r = requests.get(sandbox.url + path, params=query, headers=sandbox.auth(), timeout=10)
        bump("security", "forged_urls")
        assert r.status_code in (403, 404), f"{path} {query}: {r.status_code}"
        assert r.status_code == 403 or path.endswith(FAKE_ID), r.text
    # ... and the URL is not a key: without the Bearer header the poll URL is refused.
    r = requests.get(sandbox.url + poll_path, params=poll_query, timeout=10)
    assert r.status_code == 401


@pytest.mark.server_args("--upload-url-ttl", "1")
@pytest.mark.fake_engine(0.1)  # no job runs
def test_expired_upload_url_is_403(live_server: Server, sandbox: Sandbox) -> None:
    path, query = _signed(_upload_url(sandbox))
    time.sleep(2.2)
    r = requests.put(sandbox.url + path, params=query, data=b"late", timeout=10)
    bump("security", "forged_urls")
    assert r.status_code == 403, r.text
    assert "expire" in r.json()["error"]["message"].lower()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _readable_by_others(path: Path, top: Path) -> bool:
    """Whether another user could read ``path`` (its mode and every directory up to ``top``)."""
    if _mode(path) & 0o004 == 0:
        return False
    for parent in [*path.parents]:
        if _mode(parent) & 0o001 == 0:
            return False
        if parent == top:
            break
    return True


def test_private_files(sandbox: Sandbox) -> None:
    fresh_data = sandbox.root / "fresh-data"  # let the server create its data dir itself
    server = Server(sandbox, data_dir=fresh_data, fake_engine=0.1).start()  # modes, not words
    try:
        done = run_cli(sandbox, "transcribe", str(SAMPLE_MP3), timeout=120)
        assert done.returncode == 0, done.stderr
    finally:
        server.stop()
    modes = {
        "api key": _mode(sandbox.key_file),
        "state file": _mode(sandbox.jobs_file),
        "url secret": _mode(fresh_data / "url-secret"),
        "data dir": _mode(fresh_data),
    }
    exposed = [
        str(p)
        for p in fresh_data.rglob("*")
        if p.is_file() and _readable_by_others(p, sandbox.root)
    ]
    record(
        "security: file modes", **{k: oct(v) for k, v in modes.items()}, exposed_data_files=exposed
    )
    assert modes["api key"] == 0o600
    assert modes["state file"] == 0o600
    assert modes["url secret"] == 0o600
    assert not exposed, f"other users can read (uploads, transcripts): {exposed}"


def test_server_refuses_a_world_readable_key(sandbox: Sandbox) -> None:
    sandbox.key_file.write_text("a-key-others-can-read\n")
    sandbox.key_file.chmod(0o644)
    server = Server(sandbox)
    proc = subprocess.run(
        server.command(), env=sandbox.env(), capture_output=True, text=True, timeout=60
    )
    record("security: world-readable key", exit_code=proc.returncode)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "chmod" in proc.stderr and str(sandbox.key_file) in proc.stderr, proc.stderr
    assert "a-key-others-can-read" not in proc.stderr + proc.stdout


def test_no_secrets_or_transcripts_in_logs(live_server: Server, sandbox: Sandbox) -> None:
    runs = [
        run_cli(sandbox, "transcribe", str(SAMPLE_MP3), timeout=120),
        run_cli(sandbox, "submit", "-q", str(SAMPLE_MP3), "--force", timeout=120),
    ]
    job_id = runs[1].stdout.strip()
    runs += [
        run_cli(sandbox, "wait", job_id, timeout=120),
        run_cli(sandbox, "status", job_id, timeout=60),
        run_cli(sandbox, "jobs", "show", job_id, timeout=60),
        run_cli(sandbox, "--debug", "status", job_id, timeout=60),
        run_cli(sandbox, "upload", str(SAMPLE_MP3), timeout=60),
        run_cli(
            sandbox,
            "status",
            job_id,
            env=sandbox.env(WHISPERCLI_API_KEY="wrong-key-123"),
            timeout=60,
        ),
    ]
    assert all(r.returncode == 0 for r in runs[:-1]), [r.stderr for r in runs]
    assert runs[-1].returncode == 5
    upload_sig = parse_qs(urlsplit(runs[-2].stdout.strip()).query)["sig"][0]
    log = live_server.log()
    stderr = "\n".join(r.stderr for r in runs)
    secrets = {
        "api key": sandbox.key(),
        "url secret": (live_server.data_dir / "url-secret").read_text().strip(),
        "upload signature": upload_sig,
        "wrong key": "wrong-key-123",
    }
    # what the engine heard here (never one CPU's words): pairs of its longer words
    words = [w.strip(".,:;!?") for w in runs[0].stdout.split()]
    transcript_words = [
        f"{a} {b}" for a, b in itertools.pairwise(words) if min(len(a), len(b)) >= 4
    ]
    assert len(transcript_words) >= 5, runs[0].stdout
    found = []
    for where, text in (("server log", log), ("CLI stderr", stderr)):
        for name, value in secrets.items():
            if value and value in text:
                found.append(f"{name} in {where}")
        found += [
            f"transcript {w!r} in {where}" for w in transcript_words if w.lower() in text.lower()
        ]
        if re.search(r"sig=[0-9a-f]{16,}", text):
            found.append(f"a sig= value in {where}")
    record(
        "security: logs", server_log_lines=len(log.splitlines()), cli_runs=len(runs), leaks=found
    )
    assert not found, found


def test_public_bind_warns(sandbox: Sandbox) -> None:
    """Bind 0.0.0.0 only long enough to read the warning; no traffic is sent to it."""
    port = free_port()
    log = sandbox.root / "public.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "whispercli", "server", "run", "--host", "0.0.0.0",
             "--port", str(port), "--data-dir", str(sandbox.data_dir)],
            env=sandbox.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and "0.0.0.0" not in text and proc.poll() is None:
            time.sleep(0.1)
            text = log.read_text(errors="replace")
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
    warning = next((line for line in text.splitlines() if "0.0.0.0" in line), "")
    record("security: public bind", warning=warning)
    assert "WARNING" in warning.upper(), text
    assert any(w in warning.lower() for w in ("anyone", "expos", "plain http", "network")), warning
