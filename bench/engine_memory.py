"""The engine's peak memory by file length, each length on a fresh server (a fresh engine),
each job twice: how much of the engine's memory grows with the audio.

    python bench/engine_memory.py 1 5 20 60      # minutes of the bench set read in a row

It reads bench/data/ (`python bench/make_speech.py` or `bench/run` makes it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import engine


def main(minutes: list[float]) -> None:
    out = Path(tempfile.mkdtemp())
    for length in minutes:
        path = engine.long_file(out, length)
        with tempfile.TemporaryDirectory() as tmp, bk.running_server(Path(tmp)) as server:
            bk.wait_for_model(server)
            runs = [engine.measured_job(server, path) for _ in range(2)]
        shown = "; ".join(f"{took:.1f} s, engine peak {peak:.0f} MiB" for took, peak, _ in runs)
        print(f"{length:g} min: {shown}", flush=True)


if __name__ == "__main__":
    main([float(m) for m in sys.argv[1:]] or [1.0, 5.0, 20.0])
