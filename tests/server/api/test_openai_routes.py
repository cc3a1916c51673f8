"""The OpenAI routes in-process (no engine: the instant runner ends each job at once): how a form
becomes a job, every refusal in OpenAI's error shape with its status, the bodies of each
``response_format``, ``/v1/models``. The official SDK against real servers: test_openai_sdk.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.instant_runner import InstantRunner
from support.samples import SAMPLE_MP3

from whispercli.protocol import Status
from whispercli.server.app import create_app
from whispercli.server.jobs.runner import NoRunner
from whispercli.server.settings import ServerSettings
from whispercli.server.storage.sqlite import SqliteStore

TRANSCRIBE = "/v1/audio/transcriptions"
AUDIO = SAMPLE_MP3.read_bytes()
WORDS = [
    {"word": " Hello", "start": 0.0, "end": 0.5, "probability": 0.9},
    {"word": " world.", "start": 0.6, "end": 1.2, "probability": 0.8},
]
RESULT = {
    "text": " Hello world. Bye.",
    "segments": [
        {"id": 0, "seek": 0, "start": 0.0, "end": 1.2, "text": " Hello world.", "words": WORDS},
        {"id": 1, "start": 1.5, "end": 2.0, "text": " Bye."},  # a chunked-path segment: no seek
    ],
    "language": "en",
    "duration": 2.04,
}
ERROR_KEYS = {"message", "type", "param", "code"}


@dataclass
class App:
    client: TestClient
    store: SqliteStore
    runner: InstantRunner


def _app(tmp_path: Path, runner: Any = None, **settings: Any) -> Iterator[App]:
    config = ServerSettings(
        data_dir=tmp_path / "data", api_key_file=tmp_path / "api-key", **settings
    )
    store = SqliteStore(config.data_dir)
    runner = runner or InstantRunner(store)
    with TestClient(create_app(config, store=store, runner=runner)) as client:
        client.headers["Authorization"] = f"Bearer {config.load_api_key()}"
        yield App(client, store, runner)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    yield from _app(tmp_path)


def post(app: App, data: dict[str, Any] | None = None, path: str = TRANSCRIBE, **kw: Any) -> Any:
    files = kw.pop("files", {"file": ("a.mp3", AUDIO)})
    return app.client.post(path, data={"model": "whisper-1", **(data or {})}, files=files, **kw)


def _refused(resp: Any, status: int, param: str | None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    error: dict[str, Any] = resp.json()["error"]
    assert set(error) == ERROR_KEYS and error["param"] == param, error
    assert error["type"] == ("invalid_request_error" if status < 429 else error["type"])
    return error


def test_form_fields_become_the_jobs_params(app: App) -> None:
    resp = post(
        app,
        {
            "language": "en", "prompt": "Tiyaro, OctoAI.", "temperature": "0.0",
            "beam_size": "2", "vad_filter": "false", "hotwords": "Eden", "speed": "fast",
            "response_format": "verbose_json",
            "timestamp_granularities[]": ["word", "segment"], "chunking_strategy": "auto",
        },
    )  # fmt: skip
    assert resp.status_code == 200, resp.text
    job = app.store.get_job(resp.headers["x-request-id"])
    assert job is not None and job.model == "tiny"  # whisper-1: the server's default model
    assert job.params == {
        "language": "en",
        "initial_prompt": "Tiyaro, OctoAI.",
        "beam_size": 2,
        "vad_filter": False,
        "hotwords": "Eden",
        "speed": "fast",
        "task": "transcribe",
        "word_timestamps": True,
    }  # fmt: skip  (temperature 0: OpenAI's "raise it on failure", the default schedule)
    resp = post(app, {"keywords[]": ["Tiyaro", "Eden AI"], "temperature": "0.4"})
    job = app.store.get_job(resp.headers["x-request-id"])
    assert job is not None and job.params["hotwords"] == "Tiyaro, Eden AI"
    assert job.params["temperature"] == 0.4
    listed = app.client.get("/v1/async/jobs").json()["jobs"]  # ordinary jobs of the server
    assert len(listed) == 2 and {j["status"] for j in listed} == {"success"}


@pytest.mark.parametrize(
    ("data", "param", "said"),
    [
        ({"bogus": "1"}, "bogus", "unknown field 'bogus'; accepted: file, beam_size"),
        ({"beam_size": "two"}, "beam_size", "must be an integer"),
        ({"beam_size": "99"}, "beam_size", "between 1 and 20"),
        ({"vad_filter": "maybe"}, "vad_filter", "true or false"),
        ({"response_format": "diarized_json"}, "response_format", "no diarization"),
        ({"stream": "true", "response_format": "srt"}, "response_format", "json or text"),
        ({"timestamp_granularities[]": "word"}, "timestamp_granularities[]", "verbose_json"),
        ({"include[]": "logprobs"}, "include[]", "not supported"),
        ({"chunking_strategy": "server_vad"}, "chunking_strategy", "only 'auto'"),
        ({"language": "xx"}, "language", "language code"),
        ({"language": "fr"}, "language", "English-only"),
        ({"model": ""}, "model", "'model' is required"),
        ({"hotwords": "a", "keywords[]": "b"}, "keywords[]", "not both"),
    ],
)
def test_bad_forms_are_400s_naming_the_field(
    app: App, data: dict[str, str], param: str, said: str
) -> None:
    error = _refused(post(app, data), 400, param)
    assert said in error["message"]
    assert app.store.list_jobs(None, 10) == []  # refused before any job


def test_requests_that_are_not_a_form_with_a_file(app: App) -> None:
    _refused(post(app, files={"other": ("a.mp3", b"x")}), 400, "other")
    _refused(app.client.post(TRANSCRIBE, data={"model": "whisper-1"}), 400, "file")
    _refused(app.client.post(TRANSCRIBE, json={"model": "whisper-1"}), 400, "file")


def test_a_model_that_is_not_installed_is_a_404(app: App) -> None:
    error = _refused(post(app, {"model": "large-v3"}), 404, "model")
    assert error["code"] == "model_not_found"
    assert "installed: whisper-1, tiny, tiny.en" in error["message"]


def test_translation_on_an_english_only_model_says_what_would_do_it(app: App) -> None:
    error = _refused(post(app, path="/v1/audio/translations"), 400, "model")
    assert "'whisper-1' (model 'tiny' on this server) is English-only" in error["message"]
    assert "whispercli models pull small" in error["message"]


def test_the_key_check_answers_openais_shape_on_its_routes_only(app: App) -> None:
    error = _refused(post(app, headers={"Authorization": "Bearer wrong"}), 401, None)
    assert error["code"] == "invalid_api_key"
    models = app.client.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert models.status_code == 401 and models.json()["error"]["code"] == "invalid_api_key"
    tiyaro = app.client.get("/v1/async/jobs", headers={"Authorization": "Bearer wrong"})
    assert tiyaro.status_code == 401 and set(tiyaro.json()["error"]) == {"code", "message"}


def test_over_the_upload_limit_is_a_413(tmp_path: Path) -> None:
    for app in _app(tmp_path, max_upload_bytes=1000):
        error = _refused(post(app), 413, "file")
        assert error["code"] == "file_too_large" and "1000 bytes" in error["message"]


def test_a_full_queue_is_a_429_with_retry_after(tmp_path: Path) -> None:
    for app in _app(tmp_path, runner=NoRunner(), max_queue=1):
        url = app.client.post("/v1/input/upload-url").json()["uploadUrl"]["PUT"]
        app.client.put(url, content=AUDIO)
        queued = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny"
        assert app.client.post(queued, json={"URL": url}).status_code == 202
        resp = post(app)
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "10"
        assert resp.json()["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("status", "error", "http", "kind"),
    [
        (Status.FAILED, "could not decode the upload as audio: Invalid data", 400, "invalid_file"),
        (Status.FAILED, "the transcription engine crashed (signal 9); gave up after 3 attempts",
         500, "job_failed"),
        (Status.CANCELLED, None, 410, "job_cancelled"),
    ],
)  # fmt: skip
def test_a_job_that_ended_badly(
    app: App, status: Status, error: str | None, http: int, kind: str
) -> None:
    app.runner.status, app.runner.error = status, error
    resp = post(app)
    assert resp.status_code == http, resp.text
    body = resp.json()["error"]
    assert body["code"] == kind and (error is None or error in body["message"])
    assert body["type"] == ("server_error" if http == 500 else "invalid_request_error")
    assert resp.headers["x-should-retry"] == "false"  # the server had its attempts already


def test_json_and_verbose_json_bodies(app: App) -> None:
    app.runner.result = RESULT
    assert post(app).json() == {
        "text": "Hello world. Bye.",
        "usage": {"type": "duration", "seconds": 3},
    }
    body = post(app, {"response_format": "verbose_json"}).json()
    assert (body["task"], body["language"], body["duration"]) == ("transcribe", "english", 2.04)
    assert body["text"] == RESULT["text"] and "words" not in body
    fields = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
              "compression_ratio", "no_speech_prob"}  # fmt: skip
    assert [set(s) for s in body["segments"]] == [fields, fields]
    assert body["segments"][1]["seek"] == 0 and body["segments"][1]["tokens"] == []
    words = post(app, {"response_format": "verbose_json", "timestamp_granularities[]": "word"})
    assert words.json()["words"] == [
        {"word": "Hello", "start": 0.0, "end": 0.5},
        {"word": "world.", "start": 0.6, "end": 1.2},
    ]


def test_models_list_and_retrieve(tmp_path: Path) -> None:
    for app in _app(tmp_path, default_model="tiny.en"):
        listed = app.client.get("/v1/models").json()
        assert listed["object"] == "list"
        assert [m["id"] for m in listed["data"]] == ["whisper-1", "tiny", "tiny.en"]
        assert all(m["object"] == "model" and m["owned_by"] == "whispercli" for m in listed["data"])
        assert app.client.get("/v1/models/tiny").json()["id"] == "tiny"
        _refused(app.client.get("/v1/models/large-v3"), 404, "model")
        resp = post(app)
        job = app.store.get_job(resp.headers["x-request-id"])
        assert job is not None and job.model == "tiny.en"  # --default-model


def test_the_routes_are_in_the_openapi_schema(app: App) -> None:
    paths = app.client.get("/openapi.json").json()["paths"]
    body = paths["/v1/audio/transcriptions"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert {"/v1/audio/translations", "/v1/models", "/v1/models/{model_id}"} <= set(paths)
