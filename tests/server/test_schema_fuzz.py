"""Schemathesis over the server's own OpenAPI schema: no input makes it answer 5xx."""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from local_server import ServerHandle

EXPECTED_PATHS = {
    "/v1/input/upload-url",
    "/v1/input/uploads/{upload_id}",
    "/v1/async/ent/tiyarofs/1/openai/whisper-{model}",
    "/v1/async/jobs",
    "/v1/async/jobs/{job_id}",
    "/v1/async/jobs/{job_id}/cancel",
    "/v1/health",
}


@pytest.fixture(scope="module")
def api_schema(server: ServerHandle) -> schemathesis.BaseSchema:
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    # Valid and deliberately invalid requests (wrong types, missing fields, bad formats).
    api.config.generation.update(modes=list(schemathesis.GenerationMode))
    return api


schema = schemathesis.pytest.from_fixture("api_schema")


def test_every_endpoint_is_documented(server: ServerHandle) -> None:
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert set(doc["paths"]) == EXPECTED_PATHS
    submit = doc["paths"]["/v1/async/ent/tiyarofs/1/openai/whisper-{model}"]["post"]
    assert {"202", "400", "401", "404", "429"} <= set(submit["responses"])
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_causes_a_server_error(case: schemathesis.Case, server: ServerHandle) -> None:
    response = case.call(headers=server.headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.text)
    if response.status_code >= 400:
        assert response.headers.get("content-type") == ["application/json"], response.text
        assert "error" in response.json(), response.text
