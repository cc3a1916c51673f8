"""Upload section: `whispercli upload` vs `curl -T` to the same server, and the CLI's peak RSS.

A 1 GiB file of random bytes (and a 10 MiB one) is written to a temporary directory (deleted at
the end); one server runs with --max-upload-mb 2048. Each round, in alternating order:

* `curl -sS -f -T FILE URL` with a fresh signed upload URL (asked for with requests beforehand,
  not timed) — the process's wall time;
* `whispercli --debug upload FILE` — the process's wall time (start-up, the upload-URL request
  and the PUT) and, from the --debug request log, the PUT alone.

Throughput = file bytes / time. Peak RSS is the child's ru_maxrss (os.wait4) for `whispercli
upload` of 10 MiB and of 1 GiB; streaming keeps it flat (target: within 20 MB).

    python bench/upload.py [--rounds 5] [--size-mib 1024] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
from support.protocol import upload_url

MIB = 1024 * 1024
TARGET_RATIO = 0.9
TARGET_RSS_MB = 20.0
_PUT_LINE = re.compile(r"debug: PUT \S+ -> 200 in ([\d.]+) s")


def make_file(path: Path, size: int) -> Path:
    block = 8 * MIB
    with path.open("wb") as fh:
        for offset in range(0, size, block):
            fh.write(os.urandom(min(block, size - offset)))
    return path


def curl(server: bk.Server, path: Path) -> float:
    url = upload_url(server, extension="bin")
    argv = ["curl", "-sS", "-f", "-T", str(path), url, "-o", os.devnull]
    return bk.check(bk.run_child(argv, bk.client_env()), "curl -T").wall


def cli(server: bk.Server, path: Path) -> tuple[float, float, int]:
    """(process wall s, PUT s, peak RSS KiB) of `whispercli upload`."""
    argv = [*bk.whispercli(), "--debug", "upload", "-q", str(path)]
    run = bk.check(bk.run_child(argv, bk.client_env(server)), "whispercli upload")
    found = _PUT_LINE.search(run.stderr)
    if not found:
        raise SystemExit(f"no PUT line in whispercli --debug output:\n{run.stderr[-1500:]}")
    return run.wall, float(found.group(1)), run.max_rss_kib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="upload throughput vs curl, and peak RSS")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--small-mib", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    size = args.size_mib * MIB
    times: dict[str, list[float]] = {"curl": [], "cli": [], "cli_put": []}
    rss: dict[str, list[int]] = {"small": [], "big": []}
    with tempfile.TemporaryDirectory(prefix="whispercli-bench-upload-") as tmp:
        root = Path(tmp)
        big = make_file(root / "big.bin", size)
        small = make_file(root / "small.bin", args.small_mib * MIB)
        bk.log(f"  files written ({args.size_mib} MiB and {args.small_mib} MiB)")
        with bk.running_server(root / "server", "--max-upload-mb", str(2 * args.size_mib)) as srv:
            cli(srv, small)  # warm the page cache and the server's first-request paths
            for rnd in range(args.rounds):
                steps = ["curl", "cli", "small"]
                for step in steps[rnd % 3 :] + steps[: rnd % 3]:
                    if step == "curl":
                        times["curl"].append(curl(srv, big))
                    elif step == "cli":
                        wall, put, peak = cli(srv, big)
                        times["cli"].append(wall)
                        times["cli_put"].append(put)
                        rss["big"].append(peak)
                    else:
                        rss["small"].append(cli(srv, small)[2])
                bk.log(
                    f"  round {rnd + 1}: curl {times['curl'][-1]:.2f} s, whispercli "
                    f"{times['cli'][-1]:.2f} s (PUT {times['cli_put'][-1]:.2f} s)"
                )
                for upload in (srv.data_dir / "uploads").glob("*"):
                    upload.unlink()  # keep the disk usage at one file per round

    mb = size / 1e6
    curl_best = min(times["curl"])
    ratio_wall = [c / w for c, w in zip(times["curl"], times["cli"], strict=True)]
    ratio_put = [c / w for c, w in zip(times["curl"], times["cli_put"], strict=True)]
    rss_small_mb = max(rss["small"]) / 1024 * 1.048576
    rss_big_mb = max(rss["big"]) / 1024 * 1.048576
    growth = rss_big_mb - rss_small_mb
    head = ["client", "runs", "best s", "median s", "MB/s (median)", "vs curl (median of rounds)",
            "vs curl (best / best)", "peak RSS MB (10 MiB / 1 GiB)", "target"]  # fmt: skip
    rows = [
        ["`curl -T`", len(times["curl"]), f"{curl_best:.2f}", f"{bk.median(times['curl']):.2f}",
         f"{mb / bk.median(times['curl']):.0f}", "1.00x", "1.00x", "", ""],
        ["`whispercli upload` (whole process)", len(times["cli"]), f"{min(times['cli']):.2f}",
         f"{bk.median(times['cli']):.2f}", f"{mb / bk.median(times['cli']):.0f}",
         f"{bk.median(ratio_wall):.2f}x", f"{curl_best / min(times['cli']):.2f}x",
         f"{rss_small_mb:.1f} / {rss_big_mb:.1f} ({growth:+.1f})",
         f">= {TARGET_RATIO}x: {bk.met(bk.median(ratio_wall) >= TARGET_RATIO)}; "
         f"RSS +<= {TARGET_RSS_MB:.0f} MB: {bk.met(growth <= TARGET_RSS_MB)}"],
        ["`whispercli upload` (the PUT alone)", len(times["cli_put"]),
         f"{min(times['cli_put']):.2f}", f"{bk.median(times['cli_put']):.2f}",
         f"{mb / bk.median(times['cli_put']):.0f}", f"{bk.median(ratio_put):.2f}x",
         f"{curl_best / min(times['cli_put']):.2f}x", "", ""],
    ]  # fmt: skip
    print(
        f"{args.size_mib} MiB of random bytes to one local server, "
        f"{args.rounds} alternating rounds\n"
    )
    print(bk.table(head, rows))
    bk.write_json(
        args.json,
        {"bytes": size, "times_s": times, "max_rss_kib": rss, "ratio_wall": ratio_wall,
         "ratio_put": ratio_put, "rss_growth_mb": growth},
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
