"""Measure the embedded server: model load time, poll latency under a running job, and the
real-time factor of a long espeak-ng file. Not a test; run it by hand:

    python tests/server/measure_server.py [--readings 3] [--polls 200]

It starts a real server on a free port with temporary directories and stops it at the end.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from support.audio import LONG_TEXT, make_long_clip
from support.protocol import poll, submit, upload, wait_done
from support.sandbox import Sandbox
from support.servers import Server
from wer import wer


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=3, help="~1 min of speech each")
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="whispercli-measure-"))
    clip = make_long_clip(root, args.readings)
    server = Server(Sandbox(root / "server")).start()
    try:
        deadline = time.monotonic() + 30
        while "loaded in" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        load = re.search(r"model \S+ loaded in ([\d.]+) s", server.log())
        print(f"model load (worker, tiny.en int8): {load.group(1) if load else '?'} s")

        job = submit(server, upload(server, clip))
        while poll(server, job)["status"] != "processing":
            time.sleep(0.01)
        session = requests.Session()
        latencies = []
        for _ in range(args.polls):
            started = time.perf_counter()
            body = session.get(job["urls"]["GET"], headers=server.headers, timeout=10).json()
            latencies.append((time.perf_counter() - started) * 1000)
            if body["status"] != "processing":
                break
            time.sleep(0.02)
        cuts = statistics.quantiles(latencies, n=100)
        print(
            f"poll latency while processing ({len(latencies)} polls, keep-alive): "
            f"p50 {cuts[49]:.1f} ms, p99 {cuts[98]:.1f} ms, max {max(latencies):.1f} ms"
        )
        done = wait_done(server, job, timeout=1800)
        assert done["status"] == "success", done
        duration = done["result"]["duration"]
        work = _ts(done["completedAt"]) - _ts(done["startedAt"])
        reference = " ".join([LONG_TEXT] * args.readings)
        print(
            f"long file: {duration:.1f} s of espeak-ng speech transcribed in {work:.1f} s "
            f"-> real-time factor {work / duration:.3f} ({duration / work:.1f}x real time); "
            f"WER {wer(reference, done['result']['text']):.3f}"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
