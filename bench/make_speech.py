"""Generate the benchmark speech set from the reference texts in bench/texts/.

Every clip is espeak-ng speech (one voice, one speed), resampled to 16 kHz mono 16-bit WAV with
sox, some mixed with white/pink/brown noise at a fixed signal-to-noise ratio. The recipe is fixed
(the CLIPS table below) and deterministic: espeak-ng is deterministic and sox runs with -R
(repeatable random numbers) and -D (no dither), so the same machine gives byte-identical audio.

Output: <out>/clips/*.wav and <out>/manifest.json mapping each clip to its reference text. A full
build also writes <out>/clips/set.wav, every clip in a row (about 12 minutes), listed under
"sequences" in the manifest: the long file of the end-to-end section.

    python bench/make_speech.py                 # the whole set into bench/data/
    python bench/make_speech.py --only s1,s2    # a subset (tests use this)
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
TEXTS_DIR = BENCH_DIR / "texts"
DEFAULT_OUT = BENCH_DIR / "data"
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Clip:
    """One clip of the set: which texts, read by which voice at which speed, with which noise."""

    name: str
    texts: tuple[str, ...]  # stems of bench/texts/*.txt, read one after the other
    voice: str  # espeak-ng voice (+variant)
    wpm: int  # espeak-ng speed, words per minute
    noise: str | None = None  # sox synth noise type: whitenoise, pinknoise, brownnoise
    snr_db: float | None = None


CLIPS: tuple[Clip, ...] = (
    Clip("01", ("01_weather",), "en-us", 160),
    Clip("02", ("02_history",), "en-gb", 150),
    Clip("03", ("03_recipe",), "en-gb-x-rp", 140, "whitenoise", 20),
    Clip("04", ("04_meeting",), "en-us+f3", 170),
    Clip("05", ("05_science",), "en-gb-scotland", 145),
    Clip("06", ("06_travel",), "en-us+m3", 175, "pinknoise", 15),
    Clip("07", ("07_story",), "en-gb+f2", 135),
    Clip("08", ("08_support",), "en-029", 155),
    Clip("09", ("09_sports",), "en-us-nyc", 165, "pinknoise", 20),
    Clip("10", ("10_health",), "en-gb-x-gbclan", 150),
    Clip("11", ("11_finance",), "en-us+f4", 130, "whitenoise", 15),
    Clip("12", ("12_library",), "en-gb-x-rp+m2", 160),
    Clip("13", ("13_gardening",), "en-us", 145, "brownnoise", 12),
    Clip("s1", ("s1_short",), "en-us", 160),
    Clip("s2", ("s2_short",), "en-gb+f3", 150, "whitenoise", 20),
    Clip("s3", ("s3_short",), "en-gb-x-rp", 170),
    Clip("s4", ("s4_short",), "en-us+m2", 140),
    # The long file (> 2 minutes) for real-time-factor figures.
    Clip("long", ("02_history", "05_science", "07_story", "10_health"), "en-gb", 155),
)


def _run(args: list[str]) -> str:
    done = subprocess.run(args, check=True, capture_output=True, text=True)
    return done.stdout + done.stderr


def _rms(path: Path) -> float:
    """RMS amplitude (full scale = 1) as sox's `stat` effect reports it."""
    out = _run(["sox", str(path), "-n", "stat"])
    match = re.search(r"RMS\s+amplitude:\s+([0-9.eE+-]+)", out)
    if not match:
        raise RuntimeError(f"could not read the RMS amplitude of {path}")
    return float(match.group(1))


def _duration(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def reference_text(clip: Clip) -> str:
    """The clip's reference: its texts joined by a space, whitespace collapsed."""
    parts = [(TEXTS_DIR / f"{stem}.txt").read_text(encoding="utf-8") for stem in clip.texts]
    return " ".join(" ".join(parts).split())


def render(clip: Clip, dest: Path, tmp: Path, text: str | None = None) -> None:
    """Speak the clip's text (or ``text``) with espeak-ng, convert it to 16 kHz mono, add noise
    if asked."""
    raw = tmp / f"{clip.name}.raw.wav"
    clean = tmp / f"{clip.name}.clean.wav"
    text_file = tmp / f"{clip.name}.txt"
    text_file.write_text(reference_text(clip) if text is None else text, encoding="utf-8")
    _run(["espeak-ng", "-v", clip.voice, "-s", str(clip.wpm), "-w", str(raw), "-f", str(text_file)])
    _run(["sox", "-D", "-R", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(clean)])
    if clip.noise is None or clip.snr_db is None:
        shutil.move(clean, dest)
        return
    noise = tmp / f"{clip.name}.noise.wav"
    seconds = f"{_duration(clean):.3f}"
    synth = ["synth", seconds, clip.noise, "vol", "0.5"]
    _run(["sox", "-R", "-n", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(noise), *synth])
    # Scale the noise so that 20*log10(rms(speech) / rms(scaled noise)) == snr_db.
    gain = _rms(clean) / (_rms(noise) * math.pow(10, clip.snr_db / 20))
    mix = ["-m", "-v", "1", str(clean), "-v", f"{gain:.6f}", str(noise)]
    _run(["sox", "-D", "-R", *mix, "-b", "16", str(dest)])


def build(out: Path, only: set[str] | None = None) -> dict[str, object]:
    """Render the clips (all, or those named in `only`) into out/clips and write the manifest."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install espeak-ng sox)")
    clips = [c for c in CLIPS if only is None or c.name in only]
    if only is not None and len(clips) != len(only):
        unknown = sorted(only - {c.name for c in clips})
        raise SystemExit(f"unknown clip name(s): {', '.join(unknown)}")
    (out / "clips").mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            dest = out / "clips" / f"{clip.name}.wav"
            render(clip, dest, Path(tmp))
            entries.append(
                {
                    "name": clip.name,
                    "audio": f"clips/{clip.name}.wav",
                    "reference": reference_text(clip),
                    "texts": list(clip.texts),
                    "voice": clip.voice,
                    "wpm": clip.wpm,
                    "noise": clip.noise,
                    "snr_db": clip.snr_db,
                    "seconds": round(_duration(dest), 3),
                }
            )
    manifest: dict[str, object] = {
        "sample_rate": SAMPLE_RATE,
        "total_seconds": round(sum(float(e["seconds"]) for e in entries), 3),
        "clips": entries,
    }
    if only is None:
        whole = out / "clips" / "set.wav"
        _run(["sox", *(str(out / str(e["audio"])) for e in entries), str(whole)])
        manifest["sequences"] = [
            {
                "name": "set",
                "audio": "clips/set.wav",
                "clips": [e["name"] for e in entries],
                "seconds": round(_duration(whole), 3),
            }
        ]
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--only", help="comma-separated clip names (default: all)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    manifest = build(args.out, only)
    clips = manifest["clips"]
    assert isinstance(clips, list)
    print(f"{len(clips)} clips, {manifest['total_seconds']:.1f} s of audio in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
