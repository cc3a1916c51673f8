"""Start-up section: `whispercli --help` and `status last` vs `python -c "import requests"`.

hyperfine (-N: no shell, --warmup 3) times each command: 30 runs in 3 batches that interleave
the commands (the order rotates). The console script next to this interpreter is used, not the
pyenv shim (whose bash wrapper would add its own start-up).
`status last` runs against a real server on a free port (temporary dirs) with one finished job
saved by `whispercli submit`, so it reads the jobs file and makes one poll request.
`python -c pass` is shown as the interpreter's floor. Ratios are against `import requests`.
Byte-code is cached as after an install (PYTHONPYCACHEPREFIX in the temporary dir, filled by the
warm-up runs), even where PYTHONDONTWRITEBYTECODE is set, as in this sandbox.

    python bench/startup.py [--runs 30] [--batches 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk

TARGET_HELP = 1.5


def hyperfine(
    commands: dict[str, list[str]], env: dict[str, str], runs: int, batches: int, tmp: Path
) -> dict[str, dict[str, Any]]:
    """Times of every command, from ``batches`` hyperfine calls in rotating command order.

    hyperfine runs one command's runs back to back; on a shared machine the load drifts between
    commands, so the runs are split into batches that interleave the commands.
    """
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    per_batch = max(2, -(-runs // batches))
    for batch in range(batches):
        order = names[batch % len(names) :] + names[: batch % len(names)]
        out = tmp / f"hyperfine-{batch}.json"
        argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(per_batch), "--export-json"]
        argv.append(str(out))
        for name in order:
            argv += ["--command-name", name, " ".join(commands[name])]
        subprocess.run(argv, env=env, cwd=bk.ROOT, check=True, stdout=sys.stderr)
        for result in json.loads(out.read_text())["results"]:
            times[result["command"]] += result["times"]
    return {
        name: {
            "times": t,
            "min": min(t),
            "median": statistics.median(t),
            "mean": statistics.fmean(t),
            "stddev": statistics.stdev(t),
            "max": max(t),
        }
        for name, t in times.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CLI start-up time vs import requests")
    parser.add_argument("--runs", type=int, default=30, help="per command, in all")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    py = sys.executable
    cli = " ".join(bk.whispercli())
    commands = {
        "python -c pass": [py, "-c", "pass"],
        'python -c "import requests"': [py, "-c", '"import requests"'],
        "whispercli --help": [cli, "--help"],
        "whispercli status last": [cli, "status", "last"],
    }
    with (
        tempfile.TemporaryDirectory(prefix="whispercli-bench-startup-") as tmp,
        bk.running_server(Path(tmp) / "server") as server,
    ):
        env = bk.client_env(server, PYTHONPYCACHEPREFIX=str(Path(tmp) / "pycache"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: byte-code cached
        sample = str(bk.ROOT / "samples" / "sample.mp3")
        bk.check(bk.run_child([*bk.whispercli(), "submit", "-q", sample], env), "submit")
        bk.check(bk.run_child([*bk.whispercli(), "wait", "-q", "last"], env), "wait")
        results = hyperfine(commands, env, args.runs, args.batches, Path(tmp))

    base = results['python -c "import requests"']
    rows = []
    for name in commands:
        r = results[name]
        ratio_min = r["min"] / base["min"]
        ratio_med = r["median"] / base["median"]
        target = ""
        if name == "whispercli --help":
            target = f"<= {TARGET_HELP}x: {bk.met(ratio_med <= TARGET_HELP)}"
        rows.append(
            [
                f"`{name}`",
                len(r["times"]),
                f"{1000 * r['min']:.0f}",
                f"{1000 * r['median']:.0f}",
                f"{1000 * r['stddev']:.0f}",
                f"{ratio_min:.2f}x",
                f"{ratio_med:.2f}x",
                target,
            ]
        )
    head = ["command", "runs", "min ms", "median ms", "stddev ms", "vs import requests (min)",
            "vs import requests (median)", "target"]  # fmt: skip
    print(bk.table(head, rows))
    bk.write_json(
        args.json,
        {name: {k: results[name][k] for k in ("min", "median", "mean", "stddev", "max")}
         for name in commands},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
