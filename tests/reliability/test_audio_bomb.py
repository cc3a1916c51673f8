"""A decompression bomb: a small file that decodes to hours of audio (issue 20, item 3).

The engine decodes uploads in bounded pieces and stops a job whose audio passes
``--max-audio-hours``: from the container's header before decoding anything, and while
decoding when the header does not say (or lies). The job fails with a message that names the
limit; the engine stays up and the next job succeeds. The memory side (a 10-hour FLAC of
229 KiB peaked at 7.65 GB before) is measured by ``bench/run engine``, not here.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from support.samples import SAMPLE_MP3 as SAMPLE
from support.sandbox import Sandbox, run_cli
from support.servers import BOTH_BACKENDS, Server

pytestmark = pytest.mark.reliability

LIMIT_HOURS = "0.01"  # 36 s
BOMB_SECONDS = 120
RATE = 16000


def silence_flac(path: Path, seconds: float, *, with_length: bool) -> Path:
    """FLAC silence; without ``with_length`` its STREAMINFO's total-samples field is zeroed
    (unknown), as a FLAC written to a pipe has it, so only decoding finds the length."""
    with av.open(str(path), "w", format="flac") as out:
        stream = out.add_stream("flac", rate=RATE, layout="mono")
        done, total = 0, int(seconds * RATE)
        while done < total:
            count = min(16384, total - done)
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, count), np.int16), format="s16", layout="mono"
            )
            frame.sample_rate, frame.pts = RATE, done
            for packet in stream.encode(frame):
                out.mux(packet)
            done += count
        for packet in stream.encode(None):
            out.mux(packet)
    if not with_length:
        data = bytearray(path.read_bytes())
        assert data[:4] == b"fLaC"
        data[21] &= 0xF0  # the top 4 of the 36 bits of total samples
        data[22:26] = bytes(4)
        path.write_bytes(bytes(data))
    return path


@BOTH_BACKENDS
@pytest.mark.engine_args("--max-audio-hours", LIMIT_HOURS)  # on postgres: its one worker
@pytest.mark.fake_engine(None)  # the real engine: it is what reads the audio
def test_audio_over_the_limit_fails_its_job_and_the_engine_goes_on(
    live_server: Server, sandbox: Sandbox, tmp_path: Path
) -> None:
    stated = silence_flac(tmp_path / "stated.flac", BOMB_SECONDS, with_length=True)
    hidden = silence_flac(tmp_path / "hidden.flac", BOMB_SECONDS, with_length=False)
    assert stated.stat().st_size < 200_000  # two minutes in a small file

    by_header = run_cli(sandbox, "transcribe", str(stated), timeout=120)
    assert by_header.returncode == 3, by_header.stderr
    assert "by its header" in by_header.stderr
    assert "--max-audio-hours" in by_header.stderr
    assert "Traceback" not in by_header.stderr

    by_decoding = run_cli(sandbox, "transcribe", str(hidden), timeout=120)
    assert by_decoding.returncode == 3, by_decoding.stderr
    assert "longer than this server's limit of 36 s" in by_decoding.stderr
    assert "Traceback" not in by_decoding.stderr

    fine = run_cli(sandbox, "transcribe", str(SAMPLE), timeout=120)
    assert fine.returncode == 0, fine.stderr
    assert fine.stdout.strip()
