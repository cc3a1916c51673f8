"""Decoding profiles reach the engine: the job's `speed` input and the server's --speed."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.audio import LONG_TEXT
from support.protocol import submit, upload, wait_done
from support.servers import Server
from wer import wer

from whispercli.protocol import SPEEDS
from whispercli.server.engine import plans as decoding


def test_every_protocol_speed_is_a_profile() -> None:
    assert set(SPEEDS) == set(decoding.SPEEDS)


@pytest.mark.parametrize("speed", SPEEDS)
def test_each_profile_transcribes_a_minute_of_speech(
    server: Server, minute_clip: Path, speed: str
) -> None:
    url = upload(server, minute_clip)
    done = wait_done(server, submit(server, url, {"speed": speed}))
    assert done["status"] == "success", done.get("error")
    result = done["result"]
    assert wer(LONG_TEXT, result["text"]) <= 0.25
    starts = [seg["start"] for seg in result["segments"]]
    assert starts == sorted(starts) and len(starts) >= 5
    assert result["duration"] == pytest.approx(minute_clip.stat().st_size / 32000, rel=0.05)
