"""Hostile input against the app in-process, on both stores (issue 20): the key is checked and
the body capped before any route reads a byte of it (on every route, one added later too),
token ids and decode work are bounded at submit, deep JSON is a 400, the signed URLs name the
configured base URL whatever the Host header says, and /docs needs no CDN."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from support.instant_runner import InstantRunner
from support.samples import SAMPLE_MP3

from whispercli.server.api.deps import AUTH
from whispercli.server.app import create_app
from whispercli.server.defaults import MIB
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.sqlite import SqliteStore

SUBMIT = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny"

MAX_UPLOAD = 2 * MIB
DEFAULT_MAX_BODY = 256 * 1024
"""The cap of a body whose route declares none (api/gate.py)."""
FORM_OVERHEAD = MIB
"""Room an upload route's cap leaves for a form around the file."""
MAX_SUPPRESS_TOKENS = 1024
UNAUTHORIZED = ("unauthorized", "invalid_api_key")
"""Our code for a missing key, and OpenAI's on its routes."""
UPLOAD_ROUTES = (
    "/v2/audio/speech_to_text_async",
    "/v2/audio/speech_to_text_async/",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
)
CHUNK = 64 * 1024
HUGE = 200 * MIB
"""What a hostile body claims: never sent, only offered chunk by chunk."""


@pytest.fixture(params=["sqlite", "postgres"])
def settings_and_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    settings = ServerSettings(
        data_dir=tmp_path / "data", api_key_file=tmp_path / "api-key", max_upload_bytes=MAX_UPLOAD
    )
    if request.param == "sqlite":
        store: Any = SqliteStore(settings.data_dir)
        blobs = None
    else:
        from whispercli.server.scale.queue import migrate
        from whispercli.server.storage.postgres.blobs import PostgresBlobStore
        from whispercli.server.storage.postgres.store import PostgresStore

        dsn = request.getfixturevalue("postgres").new_database(migrate)
        store, blobs = PostgresStore(dsn), PostgresBlobStore(dsn, scratch_dir=tmp_path)
    app = create_app(settings, store=store, blobs=blobs, runner=InstantRunner(store))
    yield settings, app
    store.close()
    if blobs is not None:
        blobs.close()


@pytest.fixture
def app(settings_and_app: Any) -> FastAPI:
    built: FastAPI = settings_and_app[1]
    return built


@pytest.fixture
def client(settings_and_app: Any) -> Iterator[TestClient]:
    settings, app = settings_and_app
    with TestClient(app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {settings.load_api_key()}"
        yield test_client


def _key(app: FastAPI) -> str:
    key: str = app.state.api_key
    return key


# -- raw ASGI calls that count the body bytes the app pulled ----------------------------------
class Body:
    """A request body offered chunk by chunk (``prefix``, then ``fill`` bytes up to ``size``);
    ``read`` counts what the app pulled."""

    def __init__(self, size: int, fill: bytes = b"x", prefix: bytes = b"") -> None:
        self.size, self.fill, self.prefix, self.read = size, fill, prefix, 0

    async def receive(self) -> dict[str, Any]:
        if self.read >= self.size:
            await asyncio.sleep(0.01)
            return {"type": "http.disconnect"}
        if self.read == 0 and self.prefix:
            data = self.prefix
        else:
            data = self.fill * min(CHUNK, self.size - self.read)
        self.read += len(data)
        return {"type": "http.request", "body": data, "more_body": self.read < self.size}


def call(
    app: FastAPI, method: str, path: str, body: Body, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    """One request straight to the ASGI app: status, headers, JSON body."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8642),
    }
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, body.receive, send))  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    raw = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answer_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    try:
        return start["status"], answer_headers, json.loads(raw)
    except ValueError:
        return start["status"], answer_headers, raw


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    ids = {"job_id": "0" * 32, "upload_id": "0" * 32, "response_id": "0" * 32}
    ids |= {"public_id": "0" * 32, "model": "tiny", "model_id": "tiny"}
    found = []
    for template, operations in app.openapi()["paths"].items():
        path = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)
        for method, op in operations.items():
            found.append((method.upper(), path, op))
    return found


# -- item 1: the key before any body, and every body capped --------------------------------------
def test_every_keyed_route_refuses_a_missing_key_before_reading_a_byte(app: FastAPI) -> None:
    keyed = [(m, p) for m, p, op in _operations(app) if op.get("security")]
    assert len(keyed) >= 15
    for method, path in keyed:
        for headers in ({"Content-Length": str(HUGE)}, {"Transfer-Encoding": "chunked"}):
            for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": _key(app)}):
                body = Body(HUGE)
                status, answer, error = call(app, method, path, body, {**headers, **auth})
                assert status == 401 and error["error"]["code"] in UNAUTHORIZED, (method, path)
                assert body.read == 0, f"{method} {path} read {body.read} bytes before its 401"
                assert answer.get("connection") == "close"


def test_every_route_refuses_a_declared_length_over_its_limit_before_reading(
    app: FastAPI,
) -> None:
    limits = {"/predict": MAX_UPLOAD * 4 // 3 + 4 + FORM_OVERHEAD}
    limits |= dict.fromkeys(UPLOAD_ROUTES, MAX_UPLOAD + FORM_OVERHEAD)
    auth = {"Authorization": f"Bearer {_key(app)}"}
    for method, path, _ in _operations(app):
        limit = limits.get(path, DEFAULT_MAX_BODY) if method == "POST" else DEFAULT_MAX_BODY
        if path.startswith("/v1/input/uploads/"):
            limit = MAX_UPLOAD + FORM_OVERHEAD
        for declared in (limit + 1, HUGE):
            body = Body(declared)
            status, _, error = call(
                app, method, path, body, {**auth, "Content-Length": str(declared)}
            )
            assert (status, body.read) == (413, 0), path
            assert error["error"]["code"] in ("too_large", "file_too_large")  # ours, OpenAI's
            assert str(limit) in error["error"]["message"]


def test_a_body_without_a_length_is_cut_off_past_its_limit(app: FastAPI) -> None:
    """Each route that reads a body stops reading it one chunk past its limit at most."""
    auth = {"Authorization": f"Bearer {_key(app)}", "Transfer-Encoding": "chunked"}
    _, _, made = call(app, "POST", "/v1/input/upload-url", Body(0), auth)
    put_path = made["uploadUrl"]["PUT"].split("8642", 1)[1]
    boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
    reads = [
        ("POST", SUBMIT, b'{"URL": "', "application/json", DEFAULT_MAX_BODY),
        ("POST", "/predict", b'{"audio": "', "application/json", 3 * MIB),
        ("PUT", put_path, b"", "application/octet-stream", 3 * MIB),
        ("POST", "/v2/audio/speech_to_text_async", boundary, "multipart/form-data; boundary=b",
         3 * MIB),
    ]  # fmt: skip
    for method, path, prefix, content_type, limit in reads:
        body = Body(HUGE, b"A", prefix)
        status, _, _ = call(app, method, path, body, {**auth, "Content-Type": content_type})
        assert status == 413, (path, status)
        assert body.read <= limit + len(prefix) + CHUNK, (path, body.read)


def test_a_router_added_later_is_gated_without_edits(settings_and_app: Any) -> None:
    """The gate reads the app's schema: a new router only declares ``dependencies=AUTH``."""
    _, app = settings_and_app
    router = APIRouter()

    @router.post("/v1/added-later", dependencies=AUTH)
    async def added(body: dict[str, Any]) -> dict[str, int]:
        return {"fields": len(body)}

    app.include_router(router)
    key = {"Authorization": f"Bearer {_key(app)}", "Content-Type": "application/json"}
    body = Body(HUGE)
    status, _, _ = call(app, "POST", "/v1/added-later", body, {"Content-Length": str(HUGE)})
    assert (status, body.read) == (401, 0)
    body = Body(HUGE)
    status, _, _ = call(
        app, "POST", "/v1/added-later", body, {**key, "Transfer-Encoding": "chunked"}
    )
    assert status == 413 and body.read <= DEFAULT_MAX_BODY + CHUNK
    with TestClient(app) as client:
        answer = client.post("/v1/added-later", json={"a": 1, "b": 2}, headers=key)
    assert answer.status_code == 200 and answer.json() == {"fields": 2}


def test_unknown_paths_need_the_key_and_the_docs_do_not(app: FastAPI) -> None:
    status, _, _ = call(app, "POST", "/no/such/route", Body(10), {"Content-Length": "10"})
    assert status == 401
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"):
        status, _, _ = call(app, "GET", path, Body(0), {})
        assert status == 200, path


# -- item 2: token ids the model does not have ---------------------------------------------------
def _upload(client: TestClient) -> str:
    url: str = client.post("/v1/input/upload-url").json()["uploadUrl"]["PUT"]
    assert client.put(url, content=SAMPLE_MP3.read_bytes()).status_code == 200
    return url


@pytest.mark.parametrize(
    "tokens", [[2147483647], [51864], list(range(51864, 51964)), [70000], [1000000], "51864"]
)
def test_token_ids_beyond_the_models_vocabulary_are_refused_at_submit(
    client: TestClient, tokens: Any
) -> None:
    answer = client.post(
        SUBMIT, json={"input": {"suppress_tokens": tokens}, "URL": _upload(client)}
    )
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "suppress_tokens" in message and "0 to 51863" in message


def test_token_lists_are_bounded_and_valid_ids_pass(client: TestClient) -> None:
    url = _upload(client)
    many = client.post(SUBMIT, json={"input": {"suppress_tokens": [1] * 1025}, "URL": url})
    assert many.status_code == 400 and str(MAX_SUPPRESS_TOKENS) in many.json()["error"]["message"]
    fine = client.post(SUBMIT, json={"input": {"suppress_tokens": [-1, 0, 51863]}, "URL": url})
    assert fine.status_code == 202, fine.text


# -- item 9: the decode work one job may ask for --------------------------------------------------
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"temperature": [0.5] * 100}, "100 temperatures"),
        ({"temperature": [0.0] * 12}, "12 temperatures"),
        ({"temperature": 0.0, "temperature_increment_on_fallback": 0.001}, "1001 temperatures"),
        ({"best_of": 20}, "hypotheses"),
        ({"beam_size": 20, "patience": 10}, "hypotheses"),
        ({"temperature": [0.0] * 11, "best_of": 10}, "hypotheses"),
    ],
)
def test_decode_work_is_bounded_at_submit(
    client: TestClient, params: dict[str, Any], words: str
) -> None:
    answer = client.post(SUBMIT, json={"input": params, "URL": _upload(client)})
    assert answer.status_code == 400, answer.text
    assert words in answer.json()["error"]["message"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"beam_size": 10},
        {"temperature": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0], "best_of": 5},
        {"temperature": 0.0, "temperature_increment_on_fallback": 0.1},
        {"beam_size": 20, "best_of": 16},
    ],
)
def test_ordinary_decoding_stays_within_the_bound(
    client: TestClient, params: dict[str, Any]
) -> None:
    """Whisper's own schedule and beams up to 20 pass (the bound is MAX_DECODE_WORK)."""
    answer = client.post(SUBMIT, json={"input": params, "URL": _upload(client)})
    assert answer.status_code == 202, answer.text


# -- item 11: deep JSON is a 400 without a traceback ------------------------------------------
def test_deeply_nested_json_is_a_400_on_every_json_route(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    deep = "[" * 50_000 + "]" * 50_000
    audio = base64.b64encode(SAMPLE_MP3.read_bytes()[:3000]).decode()
    bodies = {
        "/predict": f'{{"audio": "{audio}", "x": {deep}}}',
        "/v2/audio/speech_to_text_async": f'{{"providers": "whisper", "x": {deep}}}',
        SUBMIT: f'{{"URL": "x", "input": {deep}}}',
    }
    with caplog.at_level(logging.ERROR):
        for path, body in bodies.items():
            answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (path, answer.text)
        form = client.post(
            "/v2/audio/speech_to_text_async",
            data={"providers": "whisper", "settings": "[" * 5000 + "]" * 5000},
            files={"file": ("a.mp3", SAMPLE_MP3.read_bytes())},
        )
        assert form.status_code == 400, form.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_predict_streams_its_audio_and_takes_its_params(client: TestClient) -> None:
    plain = base64.b64encode(SAMPLE_MP3.read_bytes()).decode()
    audio = plain.replace("/", "\\/")  # JSON may escape the slash
    fields = '"language": "en", "task": "transcribe"'
    body = f'{{"audio": "data:audio/mpeg;base64,{audio}", {fields}}}'
    answer = client.post("/predict", content=body, headers={"X-OctoAI-Async": "1"})
    assert answer.status_code == 200, answer.text
    poll = client.get(answer.json()["poll_url"]).json()
    assert poll["status"] == "completed"
    bad = client.post("/predict", json={"audio": plain, "language": "xx"})
    assert bad.status_code == 400 and "language" in bad.json()["error"]["message"]
    huge_params = client.post("/predict", json={"audio": "AAAA", "initial_prompt": "x" * 70_000})
    assert huge_params.status_code == 400 and "65536" in huge_params.json()["error"]["message"]


# -- item 16: URLs from the configured base URL, /docs without a CDN ------------------------------
def test_signed_urls_never_take_the_host_header(client: TestClient) -> None:
    base = "http://127.0.0.1:8642"  # the default bind address (ServerSettings)
    evil = {"Host": "evil.example:666"}
    put_url = client.post("/v1/input/upload-url", headers=evil).json()["uploadUrl"]["PUT"]
    assert put_url.startswith(base + "/v1/input/uploads/")
    assert client.put(put_url, content=SAMPLE_MP3.read_bytes(), headers=evil).status_code == 200
    job = client.post(SUBMIT, json={"URL": put_url}, headers=evil).json()["response"]
    assert job["urls"]["GET"].startswith(base + "/v1/async/jobs/")
    octo = client.post(
        "/predict",
        json={"audio": base64.b64encode(SAMPLE_MP3.read_bytes()).decode()},
        headers={**evil, "X-OctoAI-Async": "1"},
    ).json()
    assert octo["poll_url"].startswith(base + "/v1/octoai/requests/")
    assert "evil" not in json.dumps([put_url, job, octo])


def test_a_public_url_is_where_the_signed_urls_point(tmp_path: Path) -> None:
    public = "https://stt.example.org/whisper"
    settings = ServerSettings(
        data_dir=tmp_path / "data", api_key_file=tmp_path / "api-key", public_url=public
    )
    store = SqliteStore(settings.data_dir)
    with TestClient(create_app(settings, store=store, runner=InstantRunner(store))) as client:
        client.headers["Authorization"] = f"Bearer {settings.load_api_key()}"
        put_url = client.post("/v1/input/upload-url").json()["uploadUrl"]["PUT"]
        assert put_url.startswith(public + "/v1/input/uploads/")
        path_and_query = put_url[len(public) :]  # a proxy at /whisper strips its prefix
        assert client.put(path_and_query, content=SAMPLE_MP3.read_bytes()).status_code == 200
        job = client.post(SUBMIT, json={"URL": put_url}).json()["response"]
        assert job["urls"]["GET"].startswith(public + "/v1/async/jobs/")
        tampered = put_url.replace("sig=", "sig=0")
        refused = client.post(SUBMIT, json={"URL": tampered}).json()
        assert refused["error"]["code"] == "bad_signature"


def test_docs_load_nothing_from_another_host(client: TestClient) -> None:
    anonymous = TestClient(client.app)
    for page in ("/docs", "/redoc"):
        html = anonymous.get(page).text
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets, page
        for asset in assets:
            got = anonymous.get(asset)
            assert got.status_code == 200 and len(got.content) > 1000, asset


# -- item 12: IPv6 forms that carry a private or metadata IPv4 address ----------------------------
HIDDEN_IPV4 = [
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
    "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
    "http://[64:ff9b:1::a00:1]/hook",  # local-use NAT64
    "http://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
    "http://[2002:c0a8:101::1]/hook",  # 6to4 of 192.168.1.1
    "http://[::ffff:0:a9fe:a9fe]/hook",  # IPv4-translated
    "http://[::a9fe:a9fe]/hook",  # IPv4-compatible
    "http://[::7f00:1]/hook",  # IPv4-compatible 127.0.0.1: not our loopback
    "http://[::ffff:a9fe:a9fe]/hook",  # IPv4-mapped
    "http://[2001:0:4136:e378:8000:63bf:3f57:fefe]/hook",  # Teredo, client 192.168.1.1
    "http://168.63.129.16/hook",  # Azure's WireServer
]


@pytest.mark.parametrize("url", HIDDEN_IPV4)
def test_hidden_ipv4_addresses_are_refused_before_any_lookup_or_connect(
    client: TestClient, url: str, no_connect: list[object], no_dns: list[object]
) -> None:
    put_url = _upload(client)
    hook = client.post(SUBMIT, json={"URL": put_url, "webhook": url})
    assert hook.status_code == 400 and hook.json()["error"]["code"] == "invalid_webhook"
    assert "carries" in hook.text or "NAT64" in hook.text or "metadata" in hook.text
    eden = "/v2/audio/speech_to_text_async"
    fetched = client.post(eden, json={"providers": "whisper", "file_url": url})
    assert fetched.status_code == 400 and "file_url" in fetched.json()["error"]["message"]
    receiver = client.post(
        eden, data={"providers": "whisper", "webhook_receiver": url}, files={"file": b"x"}
    )
    assert receiver.status_code == 400, receiver.text
    assert no_connect == [] and no_dns == []


def test_the_engine_refuses_token_ids_beyond_its_vocabulary_before_decoding() -> None:
    """A job that reached the engine unchecked (queued by another server, or before the submit
    check) fails with a reason; the ids never reach native code (which crashed on them)."""
    script = """
import sys
from whispercli.modelhub import shipped_model
from whispercli.server.engine.whisper import Engine

engine = Engine(str(shipped_model()), cpu_threads=1)
for tokens in ([51864], [2147483647], list(range(51864, 51964))):
    try:
        engine.transcribe(sys.argv[1], {"suppress_tokens": tokens}, lambda *a: None)
        print("decoded", tokens[:1])
    except ValueError as exc:
        print("refused:", exc)
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(SAMPLE_MP3)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, f"the engine died ({done.returncode}): {done.stderr[-2000:]}"
    assert done.stdout.count("refused:") == 3, done.stdout
    assert "0 to 51863" in done.stdout


@pytest.mark.parametrize(
    "url", ["ftp://stt.example.org", "stt.example.org:8642", "http://u:p@h", "http://h/?q=1"]
)
def test_a_public_url_that_is_not_one_is_a_usage_error(tmp_path: Path, url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "whispercli", "server", "run", "--public-url", url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "WHISPERCLI_CONFIG_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 2, done.stderr
    assert "--public-url" in done.stderr and "Traceback" not in done.stderr
