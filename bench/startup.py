"""Start-up section: `whispercli --help` and `status last` vs `python -c "import requests"`.

hyperfine (-N: no shell, --warmup 3, --runs 30) times each command; the console script next to
this interpreter is used, not the pyenv shim (whose bash wrapper would add its own start-up).
`status last` runs against a real server on a free port (temporary dirs) with one finished job
saved by `whispercli submit`, so it reads the jobs file and makes one poll request.
`python -c pass` is shown as the interpreter's floor. Ratios are against `import requests`.
Byte-code is cached as after an install (PYTHONPYCACHEPREFIX in the temporary dir, filled by the
warm-up runs), even where PYTHONDONTWRITEBYTECODE is set, as in this sandbox.

    python bench/startup.py [--runs 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk

TARGET_HELP = 1.5


def hyperfine(commands: dict[str, list[str]], env: dict[str, str], runs: int, out: Path) -> dict:
    argv = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", str(out)]
    for name, command in commands.items():
        argv += ["--command-name", name, " ".join(command)]
    subprocess.run(argv, env=env, cwd=bk.ROOT, check=True, stdout=sys.stderr)
    return {r["command"]: r for r in json.loads(out.read_text())["results"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CLI start-up time vs import requests")
    parser.add_argument("--runs", type=int, default=30)
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
        results = hyperfine(commands, env, args.runs, Path(tmp) / "hyperfine.json")

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
                f"{1000 * r['stddev']:.0f}" if r.get("stddev") is not None else "",
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
