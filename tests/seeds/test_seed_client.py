"""The seed's own sample client, unchanged but for base URL, key and model, against the server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from support.samples import SAMPLE_MP3, assert_sample
from support.servers import Server

CLIENT = Path(__file__).with_name("asyncWhisper.py")
SHORT_PAUSES = (
    "import runpy, sys, time; pause = time.sleep;"
    " time.sleep = lambda seconds: pause(min(seconds, 0.2));"
    " sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
"""Runs the seed client as its own ``__main__`` with its fixed 15 s pause between polls cut to
0.2 s: what it sends, polls and prints is unchanged, only the waiting is shorter."""


def test_seed_sample_client_transcribes_the_sample(server: Server) -> None:
    env = {**os.environ, "TIYARO_BASE_URL": server.url, "TIYARO_API_KEY": server.api_key}
    proc = subprocess.run(
        [sys.executable, "-c", SHORT_PAUSES, str(CLIENT), str(SAMPLE_MP3)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "-- async request submitted --" in out
    assert "status:  success" in out
    transcript = out.split("-- Transcribed Text --\n", 1)[1].split("-- Done --", 1)[0]
    assert_sample(transcript)
