"""Time-to-first-text section: a 6-minute file through the OpenAI route and the Tiyaro route.

One real server (the default speed), warmed up; then, interleaved round by round on the same
file (six readings of tests/support/audio.py's LONG_TEXT by different espeak-ng voices,
about 6 minutes, made once into bench/data/):

* ``openai-sdk``: the ``openai`` SDK, ``stream=True``: the first ``transcript.text.delta`` and
  ``transcript.text.done``, from the start of the request (upload included);
* ``tiyaro-poll``: the Tiyaro protocol as the CLI's live transcript drives it (upload, submit,
  then ``?wait=1`` long-polls): the first poll body with partial ``segments``, and ``success``;
* ``cli-openai`` / ``cli-tiyaro``: ``whispercli transcribe FILE`` with stdout on a
  pseudo-terminal: the first transcript line on screen, and the exit.

    python bench/first_text.py [--rounds 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import openai
import requests
from support.audio import make_long_clip
from support.cli import on_terminal
from support.protocol import submit, upload

READINGS = 6
Measure = Callable[[bk.Server, Path, Path], tuple[float, float]]


def sdk_stream(server: bk.Server, audio: Path, _: Path) -> tuple[float, float]:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=server.api_key)
    started, first = time.monotonic(), None
    with audio.open("rb") as fh:
        for event in client.audio.transcriptions.create(file=fh, model="whisper-1", stream=True):
            if event.type == "transcript.text.delta" and first is None:
                first = time.monotonic() - started
    assert first is not None, "no delta"
    return first, time.monotonic() - started


def tiyaro_poll(server: bk.Server, audio: Path, _: Path) -> tuple[float, float]:
    started, first = time.monotonic(), None
    job = submit(server, upload(server, audio))
    while True:
        body = requests.get(
            job["urls"]["GET"], params={"wait": 1}, headers=server.headers, timeout=30
        ).json()
        if first is None and body.get("segments"):
            first = time.monotonic() - started
        if body["status"] in ("success", "failed", "cancelled"):
            assert body["status"] == "success", body
            return first if first is not None else time.monotonic() - started, (
                time.monotonic() - started
            )


def _cli(profile: list[str]) -> Measure:
    def measure(server: bk.Server, audio: Path, home: Path) -> tuple[float, float]:
        env = bk.client_env(server, TERM="xterm-256color", WHISPERCLI_STATE_DIR=str(home))
        if profile:  # the profile names the URL (WHISPERCLI_URL would win over it)
            env.pop("WHISPERCLI_URL")
        argv = [*bk.whispercli(), *profile, "transcribe", "--force", str(audio)]
        shown = on_terminal(argv, env)
        assert shown.code == 0 and shown.lines, shown.err
        return shown.lines[0][0], shown.ended

    return measure


VARIANTS: dict[str, Measure] = {
    "openai-sdk": sdk_stream,
    "tiyaro-poll": tiyaro_poll,
    "cli-openai": _cli(["--profile", "oa"]),
    "cli-tiyaro": _cli([]),
}


def _stats(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bk.DATA_DIR.mkdir(parents=True, exist_ok=True)
    audio = make_long_clip(bk.DATA_DIR, READINGS)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp, bk.running_server(Path(tmp) / "server") as server:
        home = Path(tmp) / "home"
        (Path(server.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").write_text(
            f'[profiles.oa]\nurl = "{server.url}/v1"\nbackend = "openai"\n'
            f'api_key = "{server.api_key}"\n'
        )
        bk.wait_for_model(server)
        sdk_stream(server, bk.ROOT / "samples" / "sample.mp3", home)  # warm-up
        for round_no in range(args.rounds):
            for name, measure in VARIANTS.items():
                first, total = measure(server, audio, home)
                figures[name].append((first, total))
                bk.log(f"round {round_no + 1} {name}: first text {first:.2f} s, end {total:.2f} s")
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    with wave.open(str(audio)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    print(f"Time to first text, a {seconds:.0f} s file (median, min-max of {args.rounds}):\n")
    print("| route | first text (s) | end (s) | first / end |")
    print("|---|---|---|---|")
    for name, runs in figures.items():
        firsts, totals = [f for f, _ in runs], [t for _, t in runs]
        ratio = statistics.median(f / t for f, t in runs)
        print(f"| {name} | {_stats(firsts)} | {_stats(totals)} | {ratio:.2f} |")
    print(f"\nload average before {' '.join(load_before)}, after {' '.join(load_after)}")
    if args.json:
        args.json.write_text(json.dumps({"figures": figures, "seconds": seconds}, indent=2))


if __name__ == "__main__":
    main()
