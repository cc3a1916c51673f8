"""The real speech of bench/real/ (see its README): clips, references, and the joined file.

python bench/realset.py OUT_DIR     # writes OUT_DIR/real-joined.wav (the clips, 1 s apart)
"""

from __future__ import annotations

import json
import sys
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REAL_DIR = Path(__file__).resolve().parent / "real"
SAMPLE_RATE = 16000
GAP_SECONDS = 1.0


@dataclass(frozen=True)
class RealClip:
    name: str
    path: Path
    reference: str
    speaker: str


def clips() -> list[RealClip]:
    """Every clip, in the order of references.json."""
    data = json.loads((REAL_DIR / "references.json").read_text(encoding="utf-8"))
    return [
        RealClip(name, REAL_DIR / "clips" / f"{name}.flac", entry["reference"], entry["speaker"])
        for name, entry in data["clips"].items()
    ]


def joined_reference(names: Sequence[str] | None = None, copies: int = 1) -> str:
    """The reference of :func:`write_joined`'s file with the same ``names`` and ``copies``."""
    chosen = _chosen(names)
    return " ".join([" ".join(c.reference for c in chosen)] * copies)


def write_joined(
    out: Path,
    names: Sequence[str] | None = None,
    *,
    gap: float = GAP_SECONDS,
    copies: int = 1,
) -> Path:
    """The clips ``names`` (all of them by default) one after the other, each followed by
    ``gap`` seconds of silence, the whole ``copies`` times over: a 16-bit WAV at ``out``."""
    from faster_whisper import decode_audio

    silence = np.zeros(int(gap * SAMPLE_RATE), np.float32)
    parts = [part for c in _chosen(names) for part in (decode_audio(str(c.path)), silence)]
    samples = np.clip(np.concatenate(parts) * 32768.0, -32768, 32767).astype("<i2")
    out.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.tobytes() * copies)
    return out


def _chosen(names: Sequence[str] | None) -> list[RealClip]:
    every = clips()
    if names is None:
        return every
    by_name = {c.name: c for c in every}
    return [by_name[name] for name in names]


if __name__ == "__main__":
    print(write_joined(Path(sys.argv[1]) / "real-joined.wav"))
