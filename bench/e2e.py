"""End-to-end section: `whispercli transcribe` of a long file vs the engine called in-process.

Four ways of turning a long file into text, alternated round by round (the order rotates every
round) so that the shared machine's load hits them alike. The long file is the whole bench set
read in a row (bench/data/clips/set.wav, about 12 minutes: a meeting or a podcast episode);
``--clip long`` takes the 157 s file instead.

* **warm**: `whispercli transcribe FILE --force` against a server that is already up with its
  model loaded (one transcription beforehand) — upload, submit, long-poll, print;
* **cold**: the same command with fresh temporary config/state/data dirs and
  WHISPERCLI_LOCAL_PORT set to a free port, so the CLI takes its auto-start path (spawn the
  server detached, wait for it, load the model); the auto-started server is stopped afterwards
  with `whispercli server stop`;
* **in-process**: whispercli.server.engine.whisper.Engine — what the server's engine process runs —
  loaded once in this process, ``Engine.transcribe(path, {}, ...)`` (the params the CLI sends
  by default, so the same decoding as the server's default);
* **in-process cold**: a fresh Python process that imports the engine, loads the model and
  transcribes (what a one-shot script pays; the fair reference for **cold**).

Overhead = e2e wall / in-process wall of the same round (the median over rounds is reported).
Most of the warm overhead is a fixed cost per run (starting Python, imports, three requests),
so the table also gives it in seconds (warm - in-process, median of rounds): the ratio for any
other length follows from it.

    python bench/e2e.py [--rounds 5] [--clip set] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import requests

TARGET_WARM = 1.05

INPROCESS_COLD = """
import sys, time
from whispercli.server.jobs import models
from whispercli.server.engine.whisper import Engine
models.keep_hub_offline()
engine = Engine(str(models.resolve("tiny", None).path))
result = engine.transcribe(sys.argv[1], {}, lambda segment, progress: None)
assert result["text"].strip(), "empty transcript"
"""


def transcribe_cli(env: dict[str, str], audio: Path) -> float:
    run = bk.check(
        bk.run_child([*bk.whispercli(), "transcribe", str(audio), "--force", "-q"], env),
        "whispercli transcribe",
    )
    if not run.stdout.strip():
        raise SystemExit("whispercli transcribe printed no transcript")
    return run.wall


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def warm_cli(server: bk.Server, env: dict[str, str], audio: Path) -> tuple[float, dict]:
    """The warm run, and where its time went, from the job's server timestamps."""
    started = time.time()
    wall = transcribe_cli(env, audio)
    ended = time.time()
    job = requests.get(
        f"{server.url}/v1/async/jobs", params={"limit": 1}, headers=server.headers, timeout=10
    ).json()["jobs"][0]
    accepted, begun, done = (_epoch(job[k]) for k in ("acceptedAt", "startedAt", "completedAt"))
    phases = {
        "client_until_accepted": accepted - started,
        "queued": begun - accepted,
        "server_work": done - begun,
        "completion_to_exit": ended - done,
    }
    return wall, phases


def cold_cli(root: Path, audio: Path) -> float:
    """Auto-start path: fresh dirs, a free local port, nothing listening there yet."""
    port = bk.free_port()
    dirs = {var: str(root / var.rsplit("_", 2)[1].lower()) for var in bk.DIR_VARS}
    env = bk.client_env(**dirs, WHISPERCLI_LOCAL_PORT=str(port))
    try:
        return transcribe_cli(env, audio)
    finally:
        pid_file = Path(dirs["WHISPERCLI_STATE_DIR"]) / f"server-{port}.pid"
        pid = json.loads(pid_file.read_text())["pid"] if pid_file.exists() else None
        bk.run_child([*bk.whispercli(), "server", "stop"], env)
        if pid is not None:
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                raise SystemExit(f"the auto-started server (pid {pid}) did not stop; killed it")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie left by `server stop`'s parent is gone for our purpose
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="end-to-end overhead of whispercli transcribe")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clip", default="set", help="bench set clip (>= 2 min of audio)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    audio = bk.clip(args.clip)
    seconds = bk.clip_seconds(args.clip)

    from whispercli.server.engine.whisper import Engine
    from whispercli.server.jobs import models

    model = models.resolve("tiny", None)
    if model is None:
        raise SystemExit("the packaged tiny model is not installed")
    engine = Engine(str(model.path))
    engine.transcribe(str(bk.clip("s1")), {}, lambda s, p: None)  # one-off costs first

    def inprocess() -> float:
        started = time.perf_counter()
        result = engine.transcribe(str(audio), {}, lambda segment, progress: None)
        wall = time.perf_counter() - started
        if not result["text"].strip():
            raise SystemExit("the in-process engine returned an empty transcript")
        return wall

    times: dict[str, list[float]] = {"warm": [], "cold": [], "inproc": [], "inproc-cold": []}
    with tempfile.TemporaryDirectory(prefix="whispercli-bench-e2e-") as tmp:
        root = Path(tmp)
        with bk.running_server(root / "server") as server:
            env = bk.client_env(server)
            bk.wait_for_model(server)
            transcribe_cli(env, bk.clip("s1"))  # the worker's first job pays one-off costs
            phases: list[dict[str, float]] = []

            def warm() -> float:
                wall, where = warm_cli(server, env, audio)
                phases.append(where)
                return wall

            runners: dict[str, Callable[[], float]] = {
                "warm": warm,
                "inproc": inprocess,
                "cold": lambda: cold_cli(Path(tempfile.mkdtemp(dir=root)), audio),
                "inproc-cold": lambda: (
                    bk.check(
                        bk.run_child([sys.executable, "-c", INPROCESS_COLD, str(audio)], env),
                        "in-process cold",
                    ).wall
                ),
            }
            names = list(runners)
            for rnd in range(args.rounds):
                order = names[rnd % len(names) :] + names[: rnd % len(names)]
                for name in order:
                    times[name].append(runners[name]())
                    bk.log(f"  round {rnd + 1}: {name} {times[name][-1]:.2f} s")

    def ratios(num: str, den: str) -> list[float]:
        return [a / b for a, b in zip(times[num], times[den], strict=True)]

    overhead = {
        "warm": ratios("warm", "inproc"),
        "cold": ratios("cold", "inproc-cold"),
        "cold_vs_warm_engine": ratios("cold", "inproc"),
        "inproc-cold": ratios("inproc-cold", "inproc"),
    }
    labels = {
        "inproc": "in-process Engine, model loaded (reference)",
        "warm": "`whispercli transcribe`, server up and warm",
        "inproc-cold": "fresh `python` process: import, load model, transcribe",
        "cold": "`whispercli transcribe`, cold: auto-starts the server",
    }
    reference = {
        "inproc": "—",
        "warm": "in-process",
        "inproc-cold": "in-process",
        "cold": "in-process cold",
    }
    rows = []
    for name in ("inproc", "warm", "inproc-cold", "cold"):
        ratio = bk.median(overhead[name]) if name in overhead else 1.0
        target = ""
        if name == "warm":
            target = f"<= {TARGET_WARM:.2f}x: {bk.met(ratio <= TARGET_WARM)}"
        rows.append(
            [
                labels[name],
                len(times[name]),
                f"{min(times[name]):.2f}",
                f"{bk.median(times[name]):.2f}",
                f"{seconds / bk.median(times[name]):.1f}",
                "—" if name == "inproc" else f"{ratio:.3f}x vs {reference[name]}",
                target,
            ]
        )
    head = [
        "path",
        "runs",
        "min s",
        "median s",
        "x realtime",
        "overhead (median of rounds)",
        "target",
    ]
    spent = {k: bk.median([p[k] for p in phases]) for k in phases[0]}
    fixed = bk.median([a - b for a, b in zip(times["warm"], times["inproc"], strict=True)])
    print(
        f"{seconds:.0f} s file (bench/data/clips/{audio.name}), {args.rounds} alternating rounds; "
        f"warm fixed overhead {fixed:.2f} s per run (warm - in-process, median of rounds); "
        f"cold vs the warm in-process engine: {bk.median(overhead['cold_vs_warm_engine']):.2f}x. "
        "Warm run, median seconds from the job's server timestamps: CLI start to accepted "
        f"{spent['client_until_accepted']:.2f}, queued {spent['queued']:.2f}, server work "
        f"{spent['server_work']:.2f} (in-process {bk.median(times['inproc']):.2f}), completion "
        f"to CLI exit {spent['completion_to_exit']:.2f}.\n"
    )
    print(bk.table(head, rows))
    bk.write_json(
        args.json,
        {
            "audio_seconds": seconds,
            "times_s": times,
            "overhead": overhead,
            "warm_fixed_overhead_s": fixed,
            "warm_phases_s": phases,
            "target_warm": TARGET_WARM,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
