"""Write bench/RESULTS.md's generated part: machine, versions and each section's table.

bench/run calls this after the sections ran, with the Markdown file each section printed. Only
the text between the two markers below is replaced, so the hand-written analysis around it
survives a re-run.

    python bench/report.py bench/out/engine.md [more section outputs...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "RESULTS.md"
BEGIN = "<!-- bench/run: generated part begins -->"
END = "<!-- bench/run: generated part ends -->"
PACKAGES = ("faster-whisper", "ctranslate2", "onnxruntime", "av", "numpy")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "unknown"


def machine_lines() -> list[str]:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return [
        f"- Date: {now}; commit {_git_commit()}",
        f"- Machine: {os.cpu_count()} CPUs ({_cpu_model()}), {_ram_gib()} RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {versions}",
    ]


def generated(sections: list[Path]) -> str:
    lines = [BEGIN, "", "Command: `bench/run`", "", *machine_lines()]
    for path in sections:
        lines += ["", f"### {path.stem}", "", path.read_text(encoding="utf-8").strip()]
    return "\n".join([*lines, "", END])


def update(results: Path, block: str) -> None:
    """Replace the generated block in `results` (append it when the markers are missing)."""
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="update bench/RESULTS.md")
    parser.add_argument("sections", nargs="+", type=Path, help="Markdown printed by each section")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    update(args.results, generated(args.sections))
    print(f"updated {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
