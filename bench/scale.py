"""Scale section: the PostgreSQL mode with 1, 2 and 4 workers (issue 11's benchmark).

One throwaway PostgreSQL cluster (tests/support/pg_cluster.py), a fresh database per row, one
``server run --database`` and N ``worker run`` processes. Rows:

* throughput: 12 jobs with 1, 2 and 4 workers on the fake engine (each job sleeps
  ``--fake-seconds``, so the 2 cores do not cap it), each worker one job at a time
  (``--engine-jobs 1``); the speed-up against 1 worker;
* jobs decoded together: the real clips of bench/real (19 files, 1-11 s) submitted at once to
  one worker, one job at a time (``--engine-jobs 1``) against the default (8 at once, their
  speech decoded in the same batches), alternated ``--rounds`` times, best of each;
* real model: ``--real-jobs`` copies of samples/sample.mp3 on 1 and 2 workers, the CPU cores
  shared out between them (``--cpu-threads``; cores cap it: reported, no target);
* dispatch latency: submit -> the worker's start (the job row's started_at - accepted_at),
  median of ``--dispatch-jobs`` jobs sent one at a time to an idle worker;
* poll p99: 4 keep-alive clients polling a finished job for ``--seconds``, on the PostgreSQL
  API server and on the embedded (SQLite) one.

    python bench/scale.py [--fake-seconds 2] [--real-jobs 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import psycopg
import realset
import requests
from support.pg_cluster import PostgresCluster
from support.protocol import submit, upload, wait_done

from whispercli.server.scale.queue import migrate
from whispercli.server.settings import FAKE_ENGINE_ENV

JOBS = 12
WORKER_COUNTS = (1, 2, 4)


@contextmanager
def fleet(
    cluster: PostgresCluster,
    root: Path,
    workers: int,
    fake_seconds: float | None,
    *worker_args: str,
) -> Iterator[tuple[bk.Server, str]]:
    """An API server on a fresh database and ``workers`` workers, all registered."""
    dsn = cluster.new_database(migrate)
    root.mkdir(parents=True)
    procs = []
    with bk.running_server(root / "api", "--database", dsn, "--idle-timeout", "0") as server:
        for n in range(workers):
            data = root / f"worker-{n}"
            data.mkdir()
            env = {
                **os.environ,
                "WHISPERCLI_DATA_DIR": str(data),
                FAKE_ENGINE_ENV: "" if fake_seconds is None else str(fake_seconds),
            }
            with (root / f"worker-{n}.log").open("wb") as log:
                argv = [sys.executable, "-m", "whispercli", "worker", "run", "--database", dsn]
                argv += worker_args
                procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        try:
            deadline = time.monotonic() + 120
            while len(health(server).get("workers", [])) < workers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{workers} workers did not register")
                time.sleep(0.2)
            yield server, dsn
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()


def health(server: bk.Server) -> dict[str, Any]:
    resp = requests.get(f"{server.url}/v1/health", headers=server.headers, timeout=10)
    resp.raise_for_status()
    body: dict[str, Any] = resp.json()
    return body


def batch(server: bk.Server, urls: list[str]) -> float:
    """Seconds from the first submit to the last success of one job per uploaded URL."""
    started = time.monotonic()
    submitted = [submit(server, url) for url in urls]
    for job in submitted:
        body = wait_done(server, job, timeout=600)
        if body["status"] != "success":
            raise RuntimeError(f"job failed: {body}")
    return time.monotonic() - started


def samples(server: bk.Server, jobs: int) -> list[str]:
    """``jobs`` uploads of the sample."""
    return [upload(server) for _ in range(jobs)]


def dispatch_latencies(server: bk.Server, dsn: str, jobs: int) -> list[float]:
    ids = []
    for _ in range(jobs):
        job = submit(server, upload(server))
        wait_done(server, job, timeout=60)
        ids.append(job["id"])
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT started_at - accepted_at FROM whispercli_jobs WHERE id = ANY(%s)", (ids,)
        ).fetchall()
    return [float(r[0]) for r in rows]


def poll_latencies(server: bk.Server, seconds: float, clients: int = 4) -> list[float]:
    job = submit(server, upload(server))
    url = wait_done(server, job, timeout=120)["urls"]["GET"]
    found: list[float] = []
    stop = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            session.headers.update(server.headers)
            mine = []
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                session.get(url, timeout=10).raise_for_status()
                mine.append(time.perf_counter() - t0)
            found.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return found


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fake-seconds", type=float, default=2.0)
    parser.add_argument("--real-jobs", type=int, default=4)
    parser.add_argument("--dispatch-jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load = os.getloadavg()
    figures: dict[str, Any] = {"loadavg_before": load}
    cluster = PostgresCluster()
    cluster.start()
    try:
        with tempfile.TemporaryDirectory(prefix="whispercli-bench-scale-") as tmp:
            root = Path(tmp)
            fake: dict[int, float] = {}
            for n in WORKER_COUNTS:
                bk.log(f"scale: {JOBS} fake jobs on {n} workers")
                with fleet(
                    cluster, root / f"fake-{n}", n, args.fake_seconds, "--engine-jobs", "1"
                ) as (server, _):
                    fake[n] = batch(server, samples(server, JOBS))
            clips = [clip.path for clip in realset.clips()]
            together: dict[str, list[float]] = {"1": [], "8": []}
            for r in range(args.rounds):
                for jobs in together:
                    bk.log(f"scale: {len(clips)} real clips, 1 worker, --engine-jobs {jobs}")
                    where = root / f"clips-{jobs}-{r}"
                    with fleet(cluster, where, 1, None, "--engine-jobs", jobs) as (server, _):
                        urls = [upload(server, path) for path in clips]
                        together[jobs].append(batch(server, urls))
            real: dict[int, float] = {}
            for n in (1, 2):
                bk.log(f"scale: {args.real_jobs} real jobs on {n} workers")
                threads = str(max(1, (os.cpu_count() or 1) // n))  # the cores, shared out
                with fleet(cluster, root / f"real-{n}", n, None, "--cpu-threads", threads) as (
                    server,
                    _,
                ):
                    real[n] = batch(server, samples(server, args.real_jobs))
            bk.log("scale: dispatch latency and PostgreSQL polls")
            with fleet(cluster, root / "dispatch", 1, 0.05) as (server, dsn):
                dispatch = dispatch_latencies(server, dsn, args.dispatch_jobs)
                pg_polls = poll_latencies(server, args.seconds)
            bk.log("scale: SQLite polls")
            with bk.running_server(root / "sqlite", "--idle-timeout", "0") as server:
                sqlite_polls = poll_latencies(server, args.seconds)
    finally:
        cluster.remove()
    speedup = {n: fake[1] / fake[n] for n in WORKER_COUNTS}
    dispatch_ms = bk.median(dispatch) * 1000
    pg_p99, sqlite_p99 = p99(pg_polls) * 1000, p99(sqlite_polls) * 1000
    targets = {2: 1.9, 4: 3.6}
    rows: list[list[Any]] = [
        [
            f"throughput, {JOBS} fake jobs ({args.fake_seconds:g} s each), {n} worker(s)",
            f"{fake[n]:.1f} s, {JOBS / fake[n]:.2f} jobs/s, x{speedup[n]:.2f}",
            f">= x{targets[n]}" if n in targets else "-",
            bk.met(speedup[n] >= targets[n]) if n in targets else "-",
        ]
        for n in WORKER_COUNTS
    ]
    alone, batched = min(together["1"]), min(together["8"])
    rows.append(
        [
            f"real model, {len(clips)} real clips (1-11 s) at once on 1 worker: "
            "--engine-jobs 8 (decoded together) vs 1",
            f"{batched:.1f} s vs {alone:.1f} s (x{alone / batched:.2f})",
            "report",
            "-",
        ]
    )
    rows += [
        [
            f"real model, {args.real_jobs} x samples/sample.mp3, {n} worker(s), "
            f"{max(1, (os.cpu_count() or 1) // n)} threads each",
            f"{real[n]:.1f} s, x{real[1] / real[n]:.2f}",
            "report",
            "-",
        ]
        for n in (1, 2)
    ]
    rows.append(
        [
            f"dispatch submit -> worker start, median of {len(dispatch)}",
            f"{dispatch_ms:.0f} ms",
            "<= 50 ms",
            bk.met(dispatch_ms <= 50),
        ]
    )
    rows.append(
        [
            "poll p99 (4 clients), PostgreSQL vs SQLite",
            f"{pg_p99:.1f} ms vs {sqlite_p99:.1f} ms (x{pg_p99 / sqlite_p99:.2f})",
            "<= x2",
            bk.met(pg_p99 <= 2 * sqlite_p99),
        ]
    )
    print(bk.table(["scale", "measured", "target", ""], rows))
    print(f"\nload average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    figures.update(
        fake_seconds=fake,
        speedup=speedup,
        real_seconds=real,
        clips_engine_jobs=together,
        dispatch_s=dispatch,
        poll_p99_ms={"postgres": pg_p99, "sqlite": sqlite_p99},
        poll_requests={"postgres": len(pg_polls), "sqlite": len(sqlite_polls)},
    )
    bk.write_json(args.json, figures)


if __name__ == "__main__":
    main()
