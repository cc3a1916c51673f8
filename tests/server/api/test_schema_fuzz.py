"""Schemathesis over the server's own OpenAPI schema: no input makes it answer 5xx. The
server's jobs run on the fake engine: what is fuzzed is the HTTP surface, not the decoding."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.servers import Server

EXPECTED_PATHS = {
    "/v1/input/upload-url",
    "/v1/input/uploads/{upload_id}",
    "/v1/async/ent/tiyarofs/1/openai/whisper-{model}",
    "/v1/async/jobs",
    "/v1/async/jobs/{job_id}",
    "/v1/async/jobs/{job_id}/cancel",
    "/v1/health",
    # Eden AI v2 (both slash forms: a redirect would turn a POST into a GET)
    "/v2/audio/speech_to_text_async",
    "/v2/audio/speech_to_text_async/",
    "/v2/audio/speech_to_text_async/{public_id}",
    "/v2/audio/speech_to_text_async/{public_id}/",
    # OctoAI
    "/healthcheck",
    "/predict",
    "/v1/octoai/requests/{response_id}",
    "/v1/octoai/requests/{response_id}/response",
    # OpenAI's audio API
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/models",
    "/v1/models/{model_id}",
}


def test_every_endpoint_is_documented(server: Server) -> None:
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert set(doc["paths"]) == EXPECTED_PATHS
    submit = doc["paths"]["/v1/async/ent/tiyarofs/1/openai/whisper-{model}"]["post"]
    assert {"202", "400", "401", "404", "429"} <= set(submit["responses"])
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    launch = doc["paths"]["/v2/audio/speech_to_text_async"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(launch["requestBody"]["content"])
    assert {"200", "400", "401"} <= set(launch["responses"])
    predict = doc["paths"]["/predict"]["post"]
    assert "audio" in predict["requestBody"]["content"]["application/json"]["schema"]["required"]
    poll = doc["paths"]["/v1/octoai/requests/{response_id}"]["get"]
    assert {"410", "422"} <= set(poll["responses"])


def test_no_input_causes_a_server_error(server: Server, subtests: pytest.Subtests) -> None:
    """Every documented operation (one subtest each) with 25 generated requests, valid and
    deliberately invalid (wrong types, missing fields, bad formats): never a 5xx, and every
    error is our JSON error body. Hypothesis drives each operation's strategy directly (not
    schemathesis' pytest plugin, which reaches into pytest internals)."""
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(EXPECTED_PATHS)
    for operation in operations:
        with subtests.test(f"{operation.method.upper()} {operation.path}"):
            _fuzz(operation, server)


def _fuzz(operation: Any, server: Server) -> None:
    strategy = st.one_of(
        [operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode]
    )

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=server.headers, timeout=30)
        assert response.status_code < 500, (case.method, case.path, response.text)
        if response.status_code >= 400:
            assert response.headers.get("content-type") == ["application/json"], response.text
            body = response.json()
            if case.path.startswith("/v2/") and response.status_code == 404:
                assert body == {"details": "Not Found"}, response.text  # Eden's documented 404
            else:
                assert "error" in body, response.text

    check()


@pytest.fixture(scope="module")
def server(fake_server: Server) -> Server:
    """The fake engine's server: these tests look at HTTP answers, never at a transcript."""
    return fake_server
