"""Server section: status polls per second and their latency, idle and while a job transcribes.

One server on a free port (temporary dirs). The load generator is wrk (C, keep-alive, bounded:
1 thread, 4 connections, 5 s per row, with the Bearer header set from a Lua script) sending
GET on a signed poll URL, the request every waiting client makes. Rows:

* idle: polling a finished short job (samples/sample.mp3) with nothing else running;
* busy, same short job: the same polls while a 36 min file (the whole bench set 3 times)
  transcribes (the worker process takes the CPU; what the event loop has left shows here);
* busy, the running job: polling the job that is transcribing (its body carries progress and
  the partial segments, and grows while it runs).

For the busy rows the long job is submitted, polled until it is processing, loaded with wrk,
checked to be still processing at the end, then cancelled.

    python bench/server.py [--seconds 5] [--connections 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import requests
from support.protocol import poll, submit, upload, wait_done, wait_until

LUA = """
wrk.method = "GET"
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d, "
    .. "\\"max_us\\": %%d, \\"errors\\": %%d, \\"bad_status\\": %%d, \\"bytes\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status, summary.bytes))
end
"""


def wrk(url: str, script: Path, seconds: int, connections: int) -> dict[str, Any]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    result["per_second"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def busy_job(server: bk.Server, audio: Path) -> dict[str, Any]:
    job = submit(server, upload(server, audio))
    wait_until(server, job, ("processing",), timeout=120)
    time.sleep(0.5)
    return job


def cancel(server: bk.Server, job: dict[str, Any]) -> None:
    requests.post(
        f"{server.url}/v1/async/jobs/{job['id']}/cancel", headers=server.headers, timeout=10
    )
    wait_done(server, job, timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="poll throughput and latency of the server")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="whispercli-bench-server-") as tmp:
        root = Path(tmp)
        long_audio = root / "set3.wav"
        subprocess.run(["sox", *[str(bk.clip("set"))] * 3, str(long_audio)], check=True)
        with bk.running_server(root / "server") as server:
            bk.wait_for_model(server)
            script = root / "auth.lua"
            script.touch(mode=0o600)
            script.write_text(LUA % server.api_key)
            short = submit(server, upload(server))
            assert wait_done(server, short)["status"] == "success"
            short_url = short["urls"]["GET"]

            def load(name: str, url: str, job: dict[str, Any] | None) -> None:
                result = wrk(url, script, args.seconds, args.connections)
                if job is not None:
                    result["job_still_processing"] = poll(server, job)["status"] == "processing"
                rows[name] = result
                bk.log(
                    f"  {name}: {result['per_second']:.0f}/s, p99 {result['p99_us'] / 1000:.1f} ms"
                )

            load("idle: finished short job", short_url, None)
            job = busy_job(server, long_audio)
            load("transcribing: finished short job", short_url, job)
            cancel(server, job)
            job = busy_job(server, long_audio)
            load("transcribing: the running job", job["urls"]["GET"], job)
            cancel(server, job)

    idle = rows["idle: finished short job"]
    table_rows = []
    for name, r in rows.items():
        still = r.get("job_still_processing")
        table_rows.append(
            [
                name,
                f"{r['per_second']:.0f}",
                f"{r['per_second'] / idle['per_second']:.2f}x",
                f"{r['p50_us'] / 1000:.1f}",
                f"{r['p99_us'] / 1000:.1f}",
                f"{r['max_us'] / 1000:.1f}",
                f"{r['bytes'] / max(1, r['requests']):.0f}",
                r["errors"] + r["bad_status"],
                "—" if still is None else ("yes" if still else "**no**"),
            ]
        )
    head = ["polling", "polls/s", "vs idle", "p50 ms", "p99 ms", "max ms", "bytes/answer",
            "errors", "job processing throughout"]  # fmt: skip
    print(
        f"wrk, 1 thread, {args.connections} keep-alive connections, {args.seconds} s per row, "
        "GET on a signed poll URL\n"
    )
    print(bk.table(head, table_rows))
    bk.write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
