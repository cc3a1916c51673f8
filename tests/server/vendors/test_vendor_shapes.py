"""The Eden AI and OctoAI shapes as pure functions: parsing, coercion, bodies."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whispercli.server.jobs.errors import ERRORS
from whispercli.server.vendors import DEFAULT_MODEL, edenai, octoai

RESULT = {
    "text": " Hello world. Bye.",
    "language": "en",
    "segments": [
        {
            "start": 0.0,
            "end": 1.2,
            "text": " Hello world.",
            "words": [
                {"word": " Hello", "start": 0.0, "end": 0.5, "probability": 0.91234},
                {"word": " world.", "start": 0.5, "end": 1.2, "probability": 0.8},
            ],
        },
        {"start": 1.5, "end": 2.0, "text": " Bye."},
    ],
}


def eden_400(exc: pytest.ExceptionInfo[edenai.EdenError]) -> dict[str, list[str]]:
    assert exc.value.status == 400
    assert exc.value.body["error"]["type"] == "Invalid request"
    message: dict[str, list[str]] = exc.value.body["error"]["message"]
    return message


def test_multipart_strings_are_coerced() -> None:
    launch = edenai.parse_launch(
        {
            "providers": "whisper",
            "language": "en-US",
            "speakers": "2",
            "profanity_filter": "false",
            "send_webhook_data": "False",
            "show_original_response": "true",
            "users_webhook_parameters": '{"ticket": 7}',
            "webhook_receiver": "http://127.0.0.1:9/hook",
        },
        has_file=True,
    )
    assert launch.providers == ("whisper",) and launch.model == DEFAULT_MODEL
    assert launch.whisper_input == {"word_timestamps": True, "language": "en"}
    assert launch.send_webhook_data is False and launch.show_original_response is True
    assert launch.users_webhook_parameters == {"ticket": 7}
    assert launch.webhook_receiver == "http://127.0.0.1:9/hook" and launch.file_url is None


def test_json_launch_with_models_params_and_vocabulary() -> None:
    launch = edenai.parse_launch(
        {
            "providers": "whisper/tiny, whisper",
            "settings": {"whisper": "tiny"},
            "file_url": "https://example.test/a.mp3",
            "custom_vocabulary": "Kubernetes, Postgres",
            "provider_params": {"whisper": {"beam_size": 2}},
            "speakers": 1,
        },
        has_file=False,
    )
    assert launch.providers == ("whisper/tiny", "whisper") and launch.model == "tiny"
    assert launch.file_url == "https://example.test/a.mp3"
    assert launch.whisper_input == {
        "word_timestamps": True,
        "initial_prompt": "Kubernetes, Postgres",
        "beam_size": 2,
    }


@pytest.mark.parametrize(
    ("fields", "has_file", "param", "words"),
    [
        ({"providers": "amazon"}, True, "providers", "'amazon'"),
        ({"providers": "whisper,google"}, True, "providers", "'google'"),
        ({"providers": "whisper/"}, True, "providers", "Invalid provider"),
        ({"providers": " , "}, True, "providers", "blank"),
        ({}, True, "providers", "required"),
        ({"providers": "whisper/tiny,whisper/small"}, True, "providers", "one model per job"),
        ({"providers": "whisper"}, False, "file", "exactly one"),
        ({"providers": "whisper", "file_url": "http://x.test/a"}, True, "file", "exactly one"),
        ({"providers": "whisper", "speakers": "two"}, True, "speakers", "integer"),
        ({"providers": "whisper", "speakers": 0}, True, "speakers", "greater"),
        ({"providers": "whisper", "profanity_filter": "true"}, True, "profanity_filter", ""),
        ({"providers": "whisper", "send_webhook_data": "maybe"}, True, "send_webhook_data", ""),
        ({"providers": "whisper", "users_webhook_parameters": "{"}, True, "users_webhook_", ""),
        ({"providers": "whisper", "settings": {"amazon": "x"}}, True, "settings", "amazon"),
        ({"providers": "whisper", "fallback_providers": "google"}, True, "providers", "google"),
        ({"providers": "whisper", "colour": "red"}, True, "colour", "Unknown field"),
        ({"providers": ["whisper"]}, True, "providers", "string"),
    ],
)
def test_bad_launches_are_edens_400_naming_the_field(
    fields: dict[str, object], has_file: bool, param: str, words: str
) -> None:
    with pytest.raises(edenai.EdenError) as exc:
        edenai.parse_launch(fields, has_file=has_file)
    message = eden_400(exc)
    [key] = message
    assert key.startswith(param)
    assert words in message[key][0]


def test_finished_body_is_keyed_by_provider_with_word_entries() -> None:
    body = edenai.job_body("pid", "success", ("whisper", "whisper/tiny"), RESULT, None)
    assert body["status"] == "finished" and body["error"] is None
    assert set(body["results"]) == {"whisper", "whisper/tiny"}
    one = body["results"]["whisper"]
    assert one["text"] == "Hello world. Bye." and one["final_status"] == "sucess"
    assert "original_response" not in one
    entries = one["diarization"]["entries"]
    assert [e["segment"] for e in entries] == ["Hello", "world.", "Bye."]
    assert entries[0] == {
        "segment": "Hello",
        "start_time": "0",
        "end_time": "0.5",
        "speaker": 1,
        "confidence": 0.9123,
    }
    assert entries[2]["start_time"] == "1.5" and entries[2]["confidence"] is None
    assert one["diarization"]["total_speakers"] == 1
    shown = edenai.job_body("pid", "success", ("whisper",), RESULT, None, original=True)
    assert shown["results"]["whisper"]["original_response"]["language"] == "en"


@pytest.mark.parametrize("status", ["accepted", "pending", "processing"])
def test_unfinished_body_has_no_results(status: str) -> None:
    body = edenai.job_body("pid", status, ("whisper",), None, None)
    assert body == {"public_id": "pid", "status": "processing", "error": None, "results": {}}


@pytest.mark.parametrize(("status", "error"), [("failed", "bad audio"), ("cancelled", None)])
def test_failed_body(status: str, error: str | None) -> None:
    body = edenai.job_body("pid", status, ("whisper",), None, error)
    assert body["status"] == "failed"
    assert body["error"]["message"] == (error or "the job was cancelled")
    assert body["results"]["whisper"]["final_status"] == "fail"


def test_webhook_body_and_list_entry() -> None:
    job = edenai.job_body("pid", "success", ("whisper",), RESULT, None)
    full = edenai.webhook_body(job, {"k": 1}, send_data=True)
    assert full["results"] == job["results"] and full["users_webhook_parameters"] == {"k": 1}
    bare = edenai.webhook_body(job, None, send_data=False)
    assert "results" not in bare and "users_webhook_parameters" not in bare
    assert bare["status"] == "finished"
    assert edenai.list_entry("pid", ("whisper",), "success", "2026-01-01T00:00:00Z") == {
        "providers": "whisper",
        "nb": 1,
        "nb_ok": 1,
        "public_id": "pid",
        "state": "finished",
        "created_at": "2026-01-01T00:00:00Z",
    }
    assert edenai.list_entry("pid", ("whisper",), "failed", None)["nb_ok"] == 0
    assert edenai.simple_error(404, "x", "y").body == {"details": "Not Found"}
    assert edenai.simple_error(403, "AuthenticationError", "no").body == {
        "error": {"type": "AuthenticationError", "message": "no"}
    }


# -- OctoAI -------------------------------------------------------------------------------------
def _read_predict(body: bytes, step: int) -> tuple[bytes, dict[str, object]]:
    """A predict body fed to the reader ``step`` bytes at a time."""
    reader = octoai.PredictReader()
    audio = b"".join(reader.feed(body[i : i + step]) for i in range(0, len(body), step))
    audio += reader.finish()
    return audio, reader.params


@pytest.mark.parametrize("step", [1, 3, 7, 1000])
def test_predict_body_splits_audio_from_params(step: int) -> None:
    raw = bytes(range(256)) * 3
    audio = base64.b64encode(raw).decode()
    body = json.dumps({"language": "en", "audio": audio, "task": "transcribe"}).encode()
    assert _read_predict(body, step) == (raw, {"language": "en", "task": "transcribe"})
    body = json.dumps({"audio": "data:audio/wav;base64," + audio}).encode()
    assert _read_predict(body, step) == (raw, {})
    escaped = json.dumps({"audio": audio}).replace("/", "\\/").replace("A", "\\u0041")
    assert _read_predict(escaped.encode(), step) == (raw, {})


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"[]", "JSON object"),
        (b"{}", "'audio'"),
        (b'{"audio": 5}', "'audio'"),
        (b'{"audio": ""}', "'audio'"),
        (b'{"audio": "not base64!"}', "not valid base64"),
        (b'{"audio": "===="}', "not valid base64"),
        (b'{"audio": "AAA"}', "not valid base64"),
        (b'{"audio": "AA==AAAA"}', "not valid base64"),
        (b'{"audio": "AAA\\ud800"}', "not valid base64"),
        (b'{"audio": "AAA\\u00e9"}', "not valid base64"),
        (b'{"audio": "AAAA", "audio": "AAAA"}', "twice"),
        (b'{"audio": "AAAA"', "ended"),
        (b"not json", "not valid JSON"),
        (b'{"audio": "AAAA", "x": ' + b"[" * 100 + b"]" * 100 + b"}", "nested deeper"),
        (b'{"audio": "AAAA", "x": "' + b"y" * 70_000 + b'"}', "larger than 65536 bytes"),
    ],
)
def test_bad_predict_bodies(body: bytes, words: str) -> None:
    with pytest.raises(octoai.OctoError, match=words):
        _read_predict(body, 5)


def test_poll_and_result_bodies() -> None:
    assert octoai.accepted_body("r1", "http://h/p")["poll_url"] == "http://h/p"
    assert octoai.is_async("1") and octoai.is_async("true") and not octoai.is_async(None)
    assert not octoai.is_async("0")
    for ours, theirs in [("pending", "pending"), ("processing", "running")]:
        body = octoai.poll_body("r1", ours, "http://h/p", "http://h/r", None)
        assert body["status"] == theirs and "response_url" not in body
    done = octoai.poll_body("r1", "success", "http://h/p", "http://h/r", "t")
    assert done["status"] == "completed" and done["response_url"] == "http://h/r"
    result = octoai.result_body(RESULT)
    assert result["transcription"] == result["response"]["text"] == "Hello world. Bye."
    assert result["response"]["segments"][0]["text"] == "Hello world."
    assert {s: ERRORS[c] for s, c in octoai.ENDED_BADLY.items()} == {
        "failed": 422,
        "cancelled": 410,
    }


def test_public_ids_and_providers_of_a_job() -> None:
    job_id = "0123456789abcdef0123456789abcdef"
    public = edenai.public_id(job_id)
    assert public == "01234567-89ab-cdef-0123-456789abcdef"
    assert edenai.job_id_of(public) == edenai.job_id_of(job_id) == job_id
    assert edenai.job_id_of("../etc") is None
    assert edenai.providers_of(None) == ("whisper",)
    assert edenai.providers_of({"providers": ["whisper/tiny", "whisper"]}) == (
        "whisper/tiny",
        "whisper",
    )
    busy = edenai.simple_error(429, "queue_full", "later", {"Retry-After": "10"})
    assert busy.headers == {"Retry-After": "10"} and busy.body["error"]["type"] == "queue_full"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, database=None)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.dictionaries(st.sampled_from(["audio", "language", "x"]), _JSON, max_size=3).map(
            lambda d: json.dumps(d).encode()
        ),
        st.text(max_size=200).map(lambda t: json.dumps({"audio": t}).encode()),
    ),
    step=st.integers(1, 50),
)
def test_a_predict_body_of_any_shape_is_read_or_refused_as_an_octo_error(
    body: bytes, step: int
) -> None:
    """Whatever the bytes, the reader answers audio and params or an OctoError (a 400)."""
    try:
        audio, params = _read_predict(body, step)
    except octoai.OctoError:
        return
    assert isinstance(audio, bytes) and audio and isinstance(params, dict)
    assert "audio" not in params
