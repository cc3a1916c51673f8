"""Completion-notice section: `whispercli wait` vs the seed sample's fixed 15 s polling loop.

For each job (a bench set clip of 5 to 40 s), both waiters start together right after the job
is submitted and wait for the SAME job:

* `whispercli wait ID` (the job was submitted with `whispercli submit -q`, so it is saved with
  its poll URL), through counting proxy 1;
* the seed sample's own loop, tests/seeds/asyncWhisper.py ``check_status_and_result``
  (poll, sleep 15 s, until success) run verbatim in a fresh Python process, through counting
  proxy 2.

Blocker jobs submitted just before (straight to the server) keep the worker busy, so each
measured job waits in the queue for a while first (as it would on a shared server) and the
waiters really wait. Notice = the waiter's process exit (wall clock) - the job's ``completedAt``
(the server's clock, milliseconds; same machine). Requests are counted by the proxies (every
HTTP request line the waiter sent). The CLI sees proxy 1 as its local default endpoint.

    python bench/notice.py [--rounds 6] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import requests
from support.protocol import submit, upload

TARGET_NOTICE_S = 0.3
TARGET_REQ_PER_10S = 1.0
SEED = (
    "import sys; sys.path.insert(0, 'tests/seeds'); import asyncWhisper; "
    "asyncWhisper.check_status_and_result(sys.argv[1])"
)
# (blocker clips, measured clip): measured clips of 5 to 40 s; blockers vary the queue wait
# (about 10 to 25 s: "set" is the whole bench set in a row, about 9 s of work).
ROUNDS = (
    (("set",), "s2"),
    (("set", "03"), "04"),
    (("set", "long"), "01"),
    (("set", "11"), "06"),
    (("set", "long", "05"), "s4"),
    (("set", "set"), "09"),
    (("set", "13"), "s1"),
    (("set", "07"), "12"),
)


@dataclass
class Wait:
    who: str
    clip: str
    waited_s: float
    notice_s: float
    requests: int


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _via(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def _run_waiter(argv: list[str], env: dict[str, str], out: dict[str, float]) -> None:
    import subprocess

    out["start"] = time.time()
    done = subprocess.run(argv, env=env, cwd=bk.ROOT, capture_output=True, check=False)
    out["end"] = time.time()
    if done.returncode != 0:
        out["error"] = float(done.returncode)
        bk.log(done.stderr.decode(errors="replace")[-1500:])


def one_round(
    server: bk.Server,
    proxies: tuple[bk.CountingProxy, bk.CountingProxy],
    cli_env: dict[str, str],
    blockers: tuple[str, ...],
    measured: str,
) -> list[Wait]:
    from whispercli.state import JobStore

    cli_proxy, seed_proxy = proxies
    for blocker in blockers:
        submit(server, upload(server, bk.clip(blocker)))
    run = bk.check(
        bk.run_child(
            [*bk.whispercli(), "submit", "-q", "--force", str(bk.clip(measured))], cli_env
        ),
        "whispercli submit",
    )
    job_id = run.stdout.strip()
    saved = JobStore(Path(cli_env["WHISPERCLI_STATE_DIR"]) / "jobs.json").resolve(job_id)
    assert saved.poll_url, "the submitted job was saved without a poll URL"
    before = (cli_proxy.requests, seed_proxy.requests)
    seed_env = {**cli_env, "TIYARO_API_KEY": server.api_key}
    results: dict[str, dict[str, float]] = {"whispercli wait": {}, "seed 15 s polling": {}}
    threads = [
        threading.Thread(
            target=_run_waiter,
            args=([*bk.whispercli(), "wait", job_id, "-q"], cli_env, results["whispercli wait"]),
        ),
        threading.Thread(
            target=_run_waiter,
            args=(
                [sys.executable, "-c", SEED, _via(saved.poll_url, seed_proxy.port)],
                seed_env,
                results["seed 15 s polling"],
            ),
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if any("error" in r for r in results.values()):
        raise SystemExit("a waiter failed")
    body = requests.get(
        _via(saved.poll_url, server.port), headers=server.headers, timeout=10
    ).json()
    assert body["status"] == "success", body["status"]
    completed = _epoch(body["completedAt"])
    counts = (cli_proxy.requests - before[0], seed_proxy.requests - before[1])
    return [
        Wait(who, measured, r["end"] - r["start"], r["end"] - completed, n)
        for (who, r), n in zip(results.items(), counts, strict=True)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="completion notice: whispercli wait vs 15 s poll")
    parser.add_argument("--rounds", type=int, default=6, help=f"jobs (at most {len(ROUNDS)})")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    waits: list[Wait] = []
    with (
        tempfile.TemporaryDirectory(prefix="whispercli-bench-notice-") as tmp,
        bk.running_server(Path(tmp) / "server") as server,
    ):
        proxies = (bk.CountingProxy(server.port), bk.CountingProxy(server.port))
        try:
            # The CLI sees the counting proxy as its local default endpoint (the embedded
            # server, whose long-poll it uses without a health probe first).
            cli_env = bk.client_env(server, WHISPERCLI_LOCAL_PORT=str(proxies[0].port))
            del cli_env["WHISPERCLI_URL"]
            bk.wait_for_model(server)
            for blockers, measured in ROUNDS[: args.rounds]:
                got = one_round(server, proxies, cli_env, blockers, measured)
                waits += got
                bk.log(
                    f"  {measured}: "
                    + "; ".join(
                        f"{w.who} waited {w.waited_s:.1f} s, notice {w.notice_s:.2f} s, "
                        f"{w.requests} requests"
                        for w in got
                    )
                )
        finally:
            for proxy in proxies:
                proxy.close()

    rows = []
    summary = {}
    for who in ("whispercli wait", "seed 15 s polling"):
        mine = [w for w in waits if w.who == who]
        notice = bk.median([w.notice_s for w in mine])
        waited = sum(w.waited_s for w in mine)
        reqs = sum(w.requests for w in mine)
        rate = 10 * reqs / waited
        summary[who] = {"median_notice_s": notice, "requests_per_10s": rate}
        target = ""
        if who == "whispercli wait":
            target = (
                f"notice <= {TARGET_NOTICE_S} s: {bk.met(notice <= TARGET_NOTICE_S)}; "
                f"<= {TARGET_REQ_PER_10S:g} req/10 s: {bk.met(rate <= TARGET_REQ_PER_10S)}"
            )
        rows.append(
            [
                who,
                len(mine),
                f"{notice:.2f}",
                f"{min(w.notice_s for w in mine):.2f} / {max(w.notice_s for w in mine):.2f}",
                f"{waited / len(mine):.1f}",
                f"{reqs / len(mine):.1f}",
                f"{rate:.2f}",
                target,
            ]
        )
    head = [
        "waiter",
        "jobs",
        "median notice s",
        "min / max notice s",
        "mean wait s",
        "requests per job",
        "requests per 10 s waiting",
        "target",
    ]
    print(bk.table(head, rows))
    bk.write_json(args.json, {"waits": [asdict(w) for w in waits], "summary": summary})
    return 0


if __name__ == "__main__":
    sys.exit(main())
