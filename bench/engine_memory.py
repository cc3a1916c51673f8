"""The engine's peak memory by file length, each length on a fresh server (a fresh engine),
each job twice: how much of the engine's memory grows with the audio. Each length runs with
the engine's heap settings (server/engine/memory.py) and with glibc's defaults
(``MALLOC_ARENA_MAX=16``, what glibc picks on 2 cores, which also turns the settings off).

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

HEAPS = {"engine heap settings": {}, "glibc defaults": {"MALLOC_ARENA_MAX": "16"}}


def main(minutes: list[float]) -> None:
    out = Path(tempfile.mkdtemp())
    for length in minutes:
        path = engine.long_file(out, length)
        for heap, env in HEAPS.items():
            with (
                tempfile.TemporaryDirectory() as tmp,
                bk.running_server(Path(tmp), env=env) as server,
            ):
                bk.wait_for_model(server)
                runs = [engine.measured_job(server, path) for _ in range(2)]
            shown = "; ".join(f"{took:.1f} s, peak {peak:.0f} MiB" for took, peak, _ in runs)
            print(f"{length:g} min, {heap}: {shown}", flush=True)


if __name__ == "__main__":
    main([float(m) for m in sys.argv[1:]] or [1.0, 5.0, 20.0])
