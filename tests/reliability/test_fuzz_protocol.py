"""Fuzz the poll-body parser: whatever a server (or a proxy in between) sends, the client
either reads a job or raises ProtocolError -- never TypeError, OverflowError, KeyError..."""

from __future__ import annotations

from typing import Any

import pytest
from fuzzkit import fuzz_settings, json_values, scalars
from hypothesis import given
from hypothesis import strategies as st
from support.figures import bump

from whispercli.protocol import JOB_FIELDS, JobInfo, ProtocolError

pytestmark = pytest.mark.reliability

SETTINGS = fuzz_settings(max_examples=400)
field_names = st.sampled_from(
    sorted(JOB_FIELDS | {"text", "language", "duration", "start", "end", "GET", "response"})
)
# Objects built from the protocol's own field names reach far deeper into the parser than
# random keys would.
protocol_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(field_names, inner, max_size=8),
    max_leaves=12,
)


def _job_shaped(draw: st.DrawFn) -> dict[str, Any]:
    body: dict[str, Any] = draw(st.dictionaries(field_names, protocol_like, max_size=8))
    body["id"] = draw(st.text(min_size=1, max_size=12))
    body["status"] = draw(st.sampled_from(["success", "processing", "FAILED", ""]) | st.text())
    segment = st.dictionaries(
        st.sampled_from(["id", "start", "end", "text", "words"]), protocol_like, max_size=5
    )
    if draw(st.booleans()):
        body["segments"] = draw(st.lists(segment, max_size=3))
    if draw(st.booleans()):
        body["result"] = {
            "text": draw(protocol_like),
            "segments": draw(st.lists(segment, max_size=3) | protocol_like),
            "language": draw(protocol_like),
            "duration": draw(protocol_like),
        }
    return {"response": body} if draw(st.booleans()) else body


job_shaped = st.composite(_job_shaped)()


def _parse(body: Any) -> None:
    try:
        job = JobInfo.from_body(body)
    except ProtocolError:
        bump("fuzz", "jobinfo_rejected")
        return
    bump("fuzz", "jobinfo_parsed")
    assert isinstance(job.id, str) and isinstance(job.status, str)
    if job.result is not None:
        assert isinstance(job.result.text, str)


@SETTINGS
@given(json_values)
def test_any_json_value_parses_or_raises_protocol_error(body: Any) -> None:
    bump("fuzz", "jobinfo_cases")
    _parse(body)


@SETTINGS
@given(job_shaped)
def test_job_shaped_bodies_parse_or_raise_protocol_error(body: dict[str, Any]) -> None:
    bump("fuzz", "jobinfo_cases")
    _parse(body)
