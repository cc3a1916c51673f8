"""Engine section: whispercli's engine against "the limit", the sequential path and a peer.

"The limit" is faster-whisper's ``BatchedInferencePipeline`` (batch 8, beam 5) called in this
process with the model loaded, audio decoding included; "sequential" is
``WhisperModel.transcribe(beam_size=5)`` (whisper-ctranslate2's and faster-whisper's default);
both on the same CTranslate2 tiny.en int8 with 2 threads. whispercli runs as it ships: its engine
in this process (each speed), a job on a real server (default speed), and ``whispercli
transcribe`` end to end against that warm server. The peer is ``whisper-ctranslate2 --batched
True`` (0.5.8, one-shot: it loads its model on every run), installed in a throwaway venv under
bench/out/ on first use.

Files: the real speech of bench/real/ joined (98.7 s, 11 speakers) and a synthetic one (91 s,
6 espeak-ng voices, three with noise: bench set clips s1-s4, 06, 09). Then the many-short-files
case (the 19 real clips as separate files), a 3 s clip end to end, ``--help`` against ``import
requests``, a 60-minute file against a 1-minute one (speed and engine memory) and a
decompression bomb (10 h of FLAC silence in about 230 KB).

Method: the machine is shared, so every measurement is interleaved with the ones it is compared
with (the order rotates every round) and keeps its fastest of ``--rounds``; read the ratios,
which come from the same run.

    python bench/engine.py                 # everything (about 5 minutes on 2 quiet cores)
    python bench/engine.py --rounds 1 --skip hour,bomb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchkit as bk
import numpy as np
import realset
import requests
import wer

WCT2_VERSION = "0.5.8"
SYNTH_CLIPS = ("s1", "s2", "s3", "s4", "06", "09")
SPEEDS = ("accurate", "default", "fast")
THREE_SECOND_CLIP = "new_home"
Row = dict[str, Any]
Outcome = tuple[str, float]
"""A contender's transcript and the CPU seconds it used (all processes involved)."""


# -- the material ------------------------------------------------------------------------------
def synth_file(out: Path) -> tuple[Path, str]:
    """The synthetic long file (clips joined) and its reference."""
    refs, parts = [], []
    for name in SYNTH_CLIPS:
        with wave.open(str(bk.clip(name))) as w:
            parts.append(w.readframes(w.getnframes()))
        refs.append(json_clip(name)["reference"])
    path = out / "synth6.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(parts))
    return path, " ".join(refs)


def json_clip(name: str) -> dict[str, Any]:
    manifest = json.loads((bk.DATA_DIR / "manifest.json").read_text(encoding="utf-8"))
    return next(c for c in manifest["clips"] if c["name"] == name)


def long_file(out: Path, minutes: float) -> Path:
    """``minutes`` of the bench set read in a row, repeated as needed (16-bit WAV)."""
    with wave.open(str(bk.clip("set"))) as w:
        frames = w.readframes(w.getnframes())
    need = int(minutes * 60 * 16000) * 2
    data = (frames * (need // len(frames) + 1))[:need]
    path = out / f"set-{minutes:g}min.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(data)
    return path


def bomb_file(out: Path, hours: float = 10.0) -> Path:
    """FLAC silence in frames of 32768 samples (as ``ffmpeg -c:a flac -frame_size 32768
    -strict -2`` writes it): about 70 KB per hour of audio."""
    import av

    path = out / "bomb.flac"
    with av.open(str(path), "w", format="flac") as container:
        options = {"compression_level": "0", "frame_size": "32768", "strict": "-2"}
        stream = container.add_stream("flac", rate=16000, layout="mono", options=options)
        block = np.zeros((1, 32768), np.int16)
        total, done = int(hours * 3600 * 16000), 0
        while done < total:
            count = min(block.shape[1], total - done)
            frame = av.AudioFrame.from_ndarray(block[:, :count], format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, done
            for packet in stream.encode(frame):
                container.mux(packet)
            done += count
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def wct2_command(out: Path) -> list[str]:
    """whisper-ctranslate2 in its own venv (made on first use; PyPI needed once)."""
    venv = out / "wct2-venv"
    exe = venv / "bin" / "whisper-ctranslate2"
    if not exe.exists():
        bk.log(f"installing whisper-ctranslate2=={WCT2_VERSION} into {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", f"whisper-ctranslate2=={WCT2_VERSION}"]
        subprocess.run(pip, check=True)
    return [str(exe)]


# -- the contenders ----------------------------------------------------------------------------
class InProcess:
    """The limit, the sequential path and whispercli's engine, models loaded once."""

    def __init__(self, model_path: str) -> None:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from whispercli.server.engine.whisper import Engine

        self.model = WhisperModel(model_path, compute_type="int8", cpu_threads=2)
        self.pipeline = BatchedInferencePipeline(self.model)
        self.engine = Engine(model_path, cpu_threads=2)

    def limit(self, path: Path) -> Outcome:
        cpu = time.process_time()
        segments, _ = self.pipeline.transcribe(str(path), batch_size=8, beam_size=5)
        return "".join(s.text for s in segments), time.process_time() - cpu

    def sequential(self, path: Path) -> Outcome:
        cpu = time.process_time()
        segments, _ = self.model.transcribe(str(path), beam_size=5)
        return "".join(s.text for s in segments), time.process_time() - cpu

    def speed(self, name: str) -> Callable[[Path], Outcome]:
        def run(path: Path) -> Outcome:
            cpu = time.process_time()
            result = self.engine.transcribe(str(path), {"speed": name}, lambda s, p: None)
            return str(result["text"]), time.process_time() - cpu

        return run


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_job(server: bk.Server, path: Path, params: dict[str, Any] | None = None) -> Outcome:
    """Upload, submit, long-poll to the end; the transcript and the engine's CPU seconds."""
    pid = engine_pid(server)
    cpu = process_cpu(pid)
    headers = server.headers
    url = requests.post(
        f"{server.url}/v1/input/upload-url", params={"extension": path.suffix[1:]},
        headers=headers, timeout=30,
    ).json()["uploadUrl"]["PUT"]  # fmt: skip
    requests.put(url, data=path.read_bytes(), timeout=120).raise_for_status()
    body = {"input": params or {}, "URL": url}
    submit = f"{server.url}/v1/async/ent/tiyarofs/1/openai/whisper-tiny?serviceTier=cpuflex"
    job = requests.post(submit, json=body, headers=headers, timeout=30).json()["response"]
    while True:
        got = requests.get(job["urls"]["GET"], params={"wait": 30}, headers=headers, timeout=60)
        state = got.json()
        if state["status"] in ("success", "failed", "cancelled"):
            if state["status"] != "success":
                raise SystemExit(f"bench job {state['status']}: {state.get('error')}")
            return str(state["result"]["text"]), process_cpu(pid) - cpu


def cli_transcribe(server: bk.Server, env: dict[str, str], *args: str) -> Outcome:
    """``whispercli transcribe ARGS``: its stdout, and its CPU plus the engine's."""
    pid = engine_pid(server)
    cpu = process_cpu(pid)
    argv = [*bk.whispercli(), "transcribe", "--force", *args]  # --force: no reuse of a saved job
    run = bk.check(bk.run_child(argv, env), "transcribe")
    return run.stdout, run.cpu + process_cpu(pid) - cpu


def peer(wct2: list[str], out: Path, *files: Path) -> Outcome:
    """whisper-ctranslate2 --batched True over ``files`` in one process; the texts in order."""
    folder = Path(tempfile.mkdtemp(dir=out))
    argv = [*wct2, "--model_directory", str(model_dir()), "--device", "cpu",
            "--compute_type", "int8", "--threads", "2", "--batched", "True",
            "--output_format", "txt", "--output_dir", str(folder), "--verbose", "False",
            *map(str, files)]  # fmt: skip
    env = bk.client_env(HF_HUB_OFFLINE="1")
    run = bk.check(bk.run_child(argv, env), "whisper-ctranslate2")
    texts = " ".join((folder / f"{f.stem}.txt").read_text(encoding="utf-8") for f in files)
    return texts, run.cpu


def model_dir() -> Path:
    from whispercli.server.jobs import models

    found = models.resolve("tiny", None)
    if found is None:
        raise SystemExit("the packaged tiny model is not installed")
    return found.path


# -- measuring ---------------------------------------------------------------------------------
Best = dict[str, tuple[float, float, str]]
"""Contender -> (fastest wall seconds, least CPU seconds, text)."""


def interleaved(contenders: dict[str, Callable[[], Outcome]], rounds: int) -> Best:
    """Each contender's fastest wall time and least CPU over ``rounds`` (order rotating)."""
    best: Best = {}
    names = list(contenders)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            text, cpu = contenders[name]()
            took = time.perf_counter() - started
            wall, least, _ = best.get(name, (took, cpu, text))
            best[name] = (min(wall, took), min(least, cpu), text)
            bk.log(f"  round {r + 1} {name}: {took:.2f} s, CPU {cpu:.2f} s")
    return best


def rows_against(best: Best, reference: str, base: str, what: str) -> list[Row]:
    wall0, cpu0, _ = best[base]
    return [
        {
            "file": what,
            "run": name,
            "seconds": round(wall, 3),
            "x_limit": round(wall / wall0, 3),
            "cpu_s": round(cpu, 3),
            "cpu_x_limit": round(cpu / cpu0, 3) if cpu0 else None,
            "wer": round(100 * wer.wer(reference, text), 2),
        }
        for name, (wall, cpu, text) in best.items()
    ]


def long_files(ctx: Context) -> list[Row]:
    """Each long file: every contender, interleaved."""
    rows: list[Row] = []
    for what, path, reference in ctx.files:
        bk.log(f"== {what}")
        best = interleaved(long_contenders(ctx, path), ctx.rounds)
        rows += rows_against(best, reference, "limit (batched b8 beam 5)", what)
    return rows


def long_contenders(ctx: Context, path: Path) -> dict[str, Callable[[], Outcome]]:
    def speed(name: str) -> Callable[[], Outcome]:
        return lambda: ctx.ip.speed(name)(path)

    return {
        "limit (batched b8 beam 5)": lambda: ctx.ip.limit(path),
        "sequential beam 5": lambda: ctx.ip.sequential(path),
        **{f"engine {name}": speed(name) for name in SPEEDS},
        "server job (default)": lambda: server_job(ctx.server, path),
        "whispercli transcribe (warm)": lambda: cli_transcribe(ctx.server, ctx.env, str(path)),
        "whisper-ctranslate2 --batched": lambda: peer(ctx.wct2, ctx.out, path),
    }


def many_short(ctx: Context) -> list[Row]:
    """The real clips as separate files, against the same clips joined."""
    clips = realset.clips()
    folder = ctx.out / "clips"
    folder.mkdir(exist_ok=True)
    for c in clips:
        (folder / c.path.name).write_bytes(c.path.read_bytes())
    joined = realset.write_joined(ctx.out / "real-joined.wav")
    written = ctx.out / "short-out"

    def directory() -> Outcome:
        args = (str(folder), "-o", str(written), "-f", "txt", "-q")
        _, cpu = cli_transcribe(ctx.server, ctx.env, *args)
        return " ".join((written / f"{c.path.stem}.txt").read_text() for c in clips), cpu

    def file_by_file() -> Outcome:
        outcomes = [ctx.ip.sequential(c.path) for c in clips]
        return " ".join(t for t, _ in outcomes), sum(c for _, c in outcomes)

    contenders: dict[str, Callable[[], Outcome]] = {
        "limit on the clips joined": lambda: ctx.ip.limit(joined),
        "whispercli transcribe DIR -o out": directory,
        "whisper-ctranslate2 --batched, the files in one run": lambda: peer(
            ctx.wct2, ctx.out, *(folder / c.path.name for c in clips)
        ),
        "sequential in-process, file by file": file_by_file,
    }
    bk.log(f"== {len(clips)} short files")
    best = interleaved(contenders, ctx.rounds)
    what = f"{len(clips)} real clips, {sum(_seconds(c.path) for c in clips):.0f} s"
    return rows_against(best, realset.joined_reference(), "limit on the clips joined", what)


def _seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        return float(container.duration or 0) / 1e6


def short_clip(ctx: Context) -> list[Row]:
    """A 3 s clip: end to end against faster-whisper in-process (model loaded)."""
    clip = next(c for c in realset.clips() if c.name == THREE_SECOND_CLIP)
    contenders: dict[str, Callable[[], Outcome]] = {
        "faster-whisper sequential in-process": lambda: ctx.ip.sequential(clip.path),
        "engine default in-process": lambda: ctx.ip.speed("default")(clip.path),
        "whispercli transcribe (warm)": lambda: cli_transcribe(ctx.server, ctx.env, str(clip.path)),
    }
    bk.log("== 3 s clip")
    best = interleaved(contenders, max(5, ctx.rounds))
    rows = rows_against(best, clip.reference, "faster-whisper sequential in-process", "3.6 s clip")
    base = best["faster-whisper sequential in-process"][0]
    for row in rows:
        row["minus_in_process_s"] = round(row["seconds"] - base, 3)
    return rows


def help_cost(ctx: Context) -> list[Row]:
    env = bk.client_env()

    def child(*argv: str) -> Callable[[], Outcome]:
        def run() -> Outcome:
            done = bk.check(bk.run_child(list(argv), env), argv[-1])
            return done.stdout, done.cpu

        return run

    contenders = {
        'python -c "import requests"': child(sys.executable, "-c", "import requests"),
        "whispercli --help": child(*bk.whispercli(), "--help"),
    }
    bk.log("== --help")
    best = interleaved(contenders, max(7, ctx.rounds))
    wall0, cpu0, _ = best['python -c "import requests"']
    return [
        {"run": name, "seconds": round(wall, 3), "x_import_requests": round(wall / wall0, 3),
         "cpu_s": round(cpu, 3), "cpu_x_import_requests": round(cpu / cpu0, 3)}
        for name, (wall, cpu, _) in best.items()
    ]  # fmt: skip


def engine_pid(server: bk.Server) -> int:
    tasks = Path(f"/proc/{server.proc.pid}/task").iterdir()
    for child in (c for t in tasks for c in (t / "children").read_text().split()):
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise SystemExit("no engine process under the server")


def peak_rss_mib(pid: int, reset: bool = False) -> float:
    """The process's peak RSS (VmHWM); ``reset`` starts a new peak (clear_refs 5)."""
    if reset:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measured_job(server: bk.Server, path: Path) -> tuple[float, float, str]:
    """A server job's wall time and the engine's peak RSS during it (MiB)."""
    pid = engine_pid(server)
    peak_rss_mib(pid, reset=True)
    started = time.perf_counter()
    try:
        text, _ = server_job(server, path)
    except SystemExit as exc:
        text = str(exc)
    return time.perf_counter() - started, peak_rss_mib(pid), text


def hour(ctx: Context) -> list[Row]:
    """A 60-minute file against a 1-minute one: wall time per minute and engine memory."""
    rows: list[Row] = []
    files = {1.0: long_file(ctx.out, 1.0), 60.0: long_file(ctx.out, 60.0)}
    best: dict[float, tuple[float, float]] = {}
    for r in range(ctx.hour_rounds):
        for minutes in (1.0, 60.0) if r % 2 == 0 else (60.0, 1.0):
            took, peak, _ = measured_job(ctx.server, files[minutes])
            bk.log(f"  {minutes:g} min: {took:.1f} s, engine peak {peak:.0f} MiB")
            if minutes not in best or took < best[minutes][0]:
                best[minutes] = (took, peak)
    per_minute = {m: t / m for m, (t, _) in best.items()}
    for minutes, (took, peak) in best.items():
        rows.append({
            "file": f"{minutes:g} min", "seconds": round(took, 2),
            "x_realtime": round(minutes * 60 / took, 1),
            "per_minute_vs_1min": round(per_minute[minutes] / per_minute[1.0], 3),
            "engine_peak_mib": round(peak), "peak_minus_1min_mib": round(peak - best[1.0][1]),
        })  # fmt: skip
    return rows


def bomb(ctx: Context) -> list[Row]:
    path = bomb_file(ctx.out)
    took, peak, outcome = measured_job(ctx.server, path)
    return [
        {
            "file": f"10 h of FLAC silence in {path.stat().st_size // 1024} KiB",
            "seconds": round(took, 1), "engine_peak_mib": round(peak),
            "outcome": outcome[:80] or "success (no speech)",
        }
    ]  # fmt: skip


# -- the run -----------------------------------------------------------------------------------
class Context:
    def __init__(self, out: Path, rounds: int, server: bk.Server, wct2: list[str]) -> None:
        self.out, self.rounds, self.server, self.wct2 = out, rounds, server, wct2
        self.hour_rounds = 1
        self.env = bk.client_env(server)
        self.ip = InProcess(str(model_dir()))
        real = realset.write_joined(out / "real-joined.wav")
        synth, synth_ref = synth_file(out)
        self.files = [
            ("real speech 98.7 s, 11 speakers", real, realset.joined_reference()),
            ("synthetic 91 s, 6 voices + noise", synth, synth_ref),
        ]


SECTIONS: dict[str, Callable[[Context], list[Row]]] = {
    "long": long_files, "short": many_short, "clip3": short_clip, "help": help_cost,
    "hour": hour, "bomb": bomb,
}  # fmt: skip


def markdown(name: str, rows: list[Row]) -> str:
    head = list(rows[0])
    return f"#### engine: {name}\n\n" + bk.table(head, [[r[k] for k in head] for r in rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hour-rounds", type=int, default=1, help="rounds of the 60-min file")
    parser.add_argument("--skip", default="", help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    skip = {s for s in args.skip.split(",") if s}
    out = bk.BENCH_DIR / "out" / "engine"
    out.mkdir(parents=True, exist_ok=True)
    wct2 = wct2_command(bk.BENCH_DIR / "out")
    from whispercli.server.engine.device import cpu_plan, layout

    plan = layout(cpu_plan("int8", "bench"), 0)
    started = datetime.now().astimezone()
    report: dict[str, Any] = {"started": started.isoformat(timespec="seconds"),
                              "cpu": platform.processor(), "plan": plan.describe()}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, bk.running_server(Path(tmp)) as server:
        bk.wait_for_model(server)
        ctx = Context(out, args.rounds, server, wct2)
        ctx.hour_rounds = args.hour_rounds
        print(f"Engine plan on this machine: {plan.describe()}; load before: {os.getloadavg()}\n")
        for name, section in SECTIONS.items():
            if name in skip:
                continue
            rows = section(ctx)
            report[name] = rows
            print(markdown(name, rows) + "\n", flush=True)
    print(f"Load after: {os.getloadavg()}")
    bk.write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
