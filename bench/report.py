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
        f"- Last run: {now}; commit {_git_commit()}",
        f"- Machine: {os.cpu_count()} CPUs ({_cpu_model()}), {_ram_gib()} RAM, "
        f"{platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {versions}",
    ]


def _previous_sections(text: str) -> dict[str, str]:
    """Section name -> body from the generated block already in RESULTS.md."""
    if BEGIN not in text or END not in text:
        return {}
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    sections: dict[str, str] = {}
    for part in block.split("\n### ")[1:]:
        name, _, body = part.partition("\n")
        sections[name.strip()] = body.strip()
    return sections


def generated(sections: list[Path], previous: dict[str, str]) -> str:
    """The block: machine lines, then every section (this run's replace earlier ones)."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    merged = dict(previous)
    for path in sections:
        body = path.read_text(encoding="utf-8").strip()
        merged[path.stem] = f"_Measured {now}._\n\n{body}"
    lines = [BEGIN, "", "Command: `bench/run` (or `bench/run SECTION...`)", "", *machine_lines()]
    for name, body in merged.items():
        lines += ["", f"### {name}", "", body]
    return "\n".join([*lines, "", END])


def update(results: Path, sections: list[Path]) -> None:
    """Replace the generated block in `results` (append it when the markers are missing).

    Sections not run this time keep their previous tables, so `bench/run e2e` does not erase
    the engine table.
    """
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    block = generated(sections, _previous_sections(text))
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
    update(args.results, args.sections)
    print(f"updated {args.results}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
