"""The official ``openai`` SDK against real servers, on both deployments: the embedded server
(SQLite, its own engine) and ``server run --database`` with a ``worker run`` (PostgreSQL).

The real model where the text matters (json, verbose_json with word and segment timestamps,
text/srt/vtt bodies); the fake engine (``WHISPERCLI_FAKE_ENGINE_SECONDS``: ten segments, one
every 0.4 s) where the timing does: streaming, a client that goes away. The worker SIGKILLed
mid-request is PostgreSQL's own test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from support.procs import until
from support.samples import SAMPLE_MP3, assert_sample
from support.sandbox import Sandbox
from support.servers import DEPLOYMENTS, Server, ServerFactory, Workers, deploy

import whispercli.formats as formats
from whispercli.protocol import Result
from whispercli.server.engine.fake import TEXT as FAKE_TEXT
from whispercli.server.engine.fake import TICKS
from whispercli.server.scale.queue import migrate

FAKE_SECONDS = 4.0


@dataclass
class Deployment:
    server: Server
    workers: Workers | None = None

    def sdk(self, api_key: str | None = None, **options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.server.url + "/v1", api_key=api_key or self.server.api_key, **options
        )

    def job(self, job_id: str) -> dict[str, Any]:
        """The job as the Tiyaro routes show it: every OpenAI request is a job of the server."""
        resp = requests.get(
            f"{self.server.url}/v1/async/jobs/{job_id}", headers=self.server.headers, timeout=10
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def newest_job(self) -> dict[str, Any]:
        resp = requests.get(
            f"{self.server.url}/v1/async/jobs", headers=self.server.headers, timeout=10
        )
        jobs: list[dict[str, Any]] = resp.json()["jobs"]
        return jobs[0] if jobs else {"id": None, "status": None}

    def until(self, job_id: str, status: str, timeout: float) -> float:
        """Seconds until the job shows ``status``."""
        started = time.monotonic()
        while self.job(job_id)["status"] != status:
            assert time.monotonic() - started < timeout, self.job(job_id)
            time.sleep(0.05)
        return time.monotonic() - started


def _deploy(
    kind: str, root: Path, request: pytest.FixtureRequest, fake: float | None
) -> Iterator[Deployment]:
    for server, workers in deploy(kind, root, request, fake):
        yield Deployment(server, workers)


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def real(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A deployment running the real model."""
    yield from _deploy(request.param, tmp_path_factory.mktemp("real"), request, None)


@pytest.fixture(scope="module", params=DEPLOYMENTS)
def fake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A deployment running the fake engine (FAKE_SECONDS a job, in TICKS segments)."""
    yield from _deploy(request.param, tmp_path_factory.mktemp("fake"), request, FAKE_SECONDS)


def test_json_and_verbose_json_with_word_and_segment_timestamps(real: Deployment) -> None:
    sdk = real.sdk()
    with SAMPLE_MP3.open("rb") as audio:
        raw = sdk.audio.transcriptions.with_raw_response.create(file=audio, model="whisper-1")
    plain = raw.parse()
    assert_sample(plain.text)
    assert plain.usage is not None and (plain.usage.type, plain.usage.seconds) == ("duration", 12)
    job = real.job(raw.headers["x-request-id"])  # an ordinary job of the server
    assert job["status"] == "success" and job["model"] == "tiny"  # whisper-1: the default model
    with SAMPLE_MP3.open("rb") as audio:
        verbose = sdk.audio.transcriptions.create(
            file=audio,
            model="tiny",
            language="en",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
    assert verbose.language == "english" and abs(verbose.duration - 11.4) < 0.2
    assert verbose.segments and verbose.words
    assert_sample(verbose.text)
    for segment in verbose.segments:
        assert segment.tokens and segment.avg_logprob < 0 and 0 <= segment.no_speech_prob <= 1
        assert segment.start < segment.end and segment.text.strip()
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and all(w.word == w.word.strip() for w in verbose.words)
    spoken = " ".join(w.word for w in verbose.words)
    assert_sample(spoken)
    with SAMPLE_MP3.open("rb") as audio:
        segments_only = sdk.audio.transcriptions.create(
            file=audio, model="tiny", response_format="verbose_json"
        )
    assert segments_only.words is None and segments_only.segments


def test_translation_refused_on_an_english_only_model(real: Deployment) -> None:
    with SAMPLE_MP3.open("rb") as audio, pytest.raises(openai.BadRequestError) as refused:
        real.sdk().audio.translations.create(file=audio, model="whisper-1")
    error = refused.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == "model"
    assert "English-only" in error["message"] and "models pull small" in error["message"]


def test_wrong_key_models_and_an_unknown_model(real: Deployment) -> None:
    with pytest.raises(openai.AuthenticationError):
        real.sdk(api_key="wrong").models.list()
    with SAMPLE_MP3.open("rb") as audio, pytest.raises(openai.AuthenticationError):
        real.sdk(api_key="wrong").audio.transcriptions.create(file=audio, model="whisper-1")
    ids = [m.id for m in real.sdk().models.list()]
    assert ids[0] == "whisper-1" and {"tiny", "tiny.en"} <= set(ids)
    assert real.sdk().models.retrieve("tiny.en").owned_by == "whispercli"
    with SAMPLE_MP3.open("rb") as audio, pytest.raises(openai.NotFoundError) as missing:
        real.sdk().audio.transcriptions.create(file=audio, model="large-v3")
    assert "installed: whisper-1, tiny" in str(missing.value)


def test_extra_body_and_keywords_arrive_as_the_sdk_encodes_them(real: Deployment) -> None:
    """Refused before any job: what the SDK sends is read field by field."""
    sdk = real.sdk()
    for extra, field in (({"bogus": 1}, "bogus"), ({"beam_size": 0}, "beam_size")):
        with SAMPLE_MP3.open("rb") as audio, pytest.raises(openai.BadRequestError) as refused:
            sdk.audio.transcriptions.create(file=audio, model="whisper-1", extra_body=extra)
        assert isinstance(refused.value.body, dict) and refused.value.body["param"] == field
    with SAMPLE_MP3.open("rb") as audio, pytest.raises(openai.BadRequestError) as refused:
        sdk.audio.transcriptions.create(
            file=audio, model="whisper-1", keywords=["Tiyaro"], extra_body={"hotwords": "x"}
        )
    assert isinstance(refused.value.body, dict) and refused.value.body["param"] == "keywords[]"


@pytest.mark.parametrize("real", ["sqlite"], indirect=True)  # the router's own business
@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
def test_text_srt_and_vtt_are_our_own_writers_byte_for_byte(real: Deployment, fmt: str) -> None:
    with SAMPLE_MP3.open("rb") as audio:
        raw = real.sdk().audio.transcriptions.with_raw_response.create(
            file=audio, model="whisper-1", response_format=fmt
        )
    job = real.job(raw.headers["x-request-id"])
    written = formats.render(Result.from_dict(job["result"]), {"text": "txt"}.get(fmt, fmt))
    assert raw.parse() == written and len(written.splitlines()) >= 2
    assert raw.headers["content-type"].startswith("text/plain")


def test_stream_sends_each_segment_as_it_is_decoded(fake: Deployment) -> None:
    events: list[tuple[float, Any]] = []
    with SAMPLE_MP3.open("rb") as audio:
        stream = fake.sdk().audio.transcriptions.create(file=audio, model="whisper-1", stream=True)
        events.extend((time.time(), event) for event in stream)
    deltas = [(at, e) for at, e in events if e.type == "transcript.text.delta"]
    done_at, done = events[-1]
    assert done.type == "transcript.text.done"
    assert [e.delta for _, e in deltas] == [FAKE_TEXT] * TICKS
    assert done.text == "".join(e.delta for _, e in deltas).strip()
    assert [e.segment_id for _, e in deltas] == [f"seg_{i}" for i in range(TICKS)]
    job = fake.job(stream.response.headers["x-request-id"])
    started, ended = _epoch(job["startedAt"]), _epoch(job["completedAt"])
    first_at = deltas[0][0]
    # the first text well before the end, and the rest spread over the job, not in one burst
    assert first_at - started < 0.4 * (ended - started), (first_at - started, ended - started)
    assert deltas[-2][0] - first_at > 0.5 * FAKE_SECONDS
    assert done_at >= ended


def test_a_client_that_goes_away_cancels_its_job(fake: Deployment) -> None:
    with SAMPLE_MP3.open("rb") as audio:
        stream = fake.sdk().audio.transcriptions.create(file=audio, model="whisper-1", stream=True)
        next(iter(stream))  # the first delta: the job runs
        job_id = stream.response.headers["x-request-id"]
        stream.close()
    assert fake.until(job_id, "cancelled", timeout=FAKE_SECONDS / 2) < FAKE_SECONDS / 2
    impatient = fake.sdk(timeout=1.0, max_retries=0)
    with SAMPLE_MP3.open("rb") as audio, pytest.raises(openai.APITimeoutError):
        impatient.audio.transcriptions.create(file=audio, model="whisper-1")
    job = fake.newest_job()
    assert job["id"] != job_id
    fake.until(job["id"], "cancelled", timeout=FAKE_SECONDS / 2)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_worker_killed_mid_request_still_answers(
    postgres: Any, server_factory: ServerFactory, sandbox: Sandbox
) -> None:
    """The request holds on while the job is re-picked by another worker (attempt 2)."""
    dsn = postgres.new_database(migrate)
    server = server_factory.start("--database", dsn)
    workers = Workers(sandbox, dsn)
    deployment = Deployment(server, workers)
    answer: dict[str, Any] = {}

    def call() -> None:
        with SAMPLE_MP3.open("rb") as audio:
            answer["text"] = (
                deployment.sdk().audio.transcriptions.create(file=audio, model="whisper-1").text
            )

    try:
        workers.start(FAKE_SECONDS), workers.start(FAKE_SECONDS)
        caller = threading.Thread(target=call)
        caller.start()
        job = until(lambda: (j := deployment.newest_job())["status"] == "processing" and j)
        running = until(lambda: next((w for w in workers.started if job["id"] in w.log()), None))
        running.kill()
        caller.join(60)
        assert answer.get("text") == (FAKE_TEXT * TICKS).strip(), workers.logs()
        assert f"job {job['id']}: attempt 2" in workers.logs()
    finally:
        workers.stop_all()
