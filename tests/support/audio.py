"""Audio made on the fly for tests (espeak-ng, sox, ffmpeg): tones, spoken words, long speech,
silence, and files that only claim to be audio. The long clips are made once per session by
the fixtures in tests/conftest.py."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock
from support.samples import SAMPLE_MP3 as SAMPLE

LONG_TEXT = """\
The morning train to the coast leaves from platform four at a quarter past eight.
Our library opens late on Thursdays, so students can return their books after work.
A small bakery on the corner sells warm bread, apple pies and strong black coffee.
The committee agreed to repaint the old bridge before the winter storms arrive.
Please remember to water the tomato plants and close the greenhouse door tonight.
Several volunteers cleaned the river bank and counted more than forty kinds of birds.
The museum will show a collection of maps drawn by sailors three hundred years ago.
After the concert, the orchestra packed their instruments into a long blue truck.
My neighbour is building a wooden boat in his garage and hopes to sail it in June.
The hospital opened a new wing with bright rooms, quiet gardens and a children's ward.
Farmers in the valley expect a good harvest of wheat, barley and sweet potatoes.
Engineers tested the solar panels on the roof and found they work well in cloudy weather.
"""
READINGS = (("en", 175), ("en-us", 150), ("en+f3", 190), ("en-gb-x-rp", 160), ("en+m3", 140))
"""(espeak-ng voice, words per minute): each reading of LONG_TEXT is about a minute."""


def shared_long_clip(tmp_path_factory: pytest.TempPathFactory, readings: int) -> Path:
    """:func:`make_long_clip` made once per run: with pytest-xdist the workers share it (the
    run's base temp, under a file lock), without it the session has its own."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / "shared-speech" / f"readings-{readings}"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "lock")):
        return make_long_clip(folder, readings)


def make_long_clip(folder: Path, readings: int) -> Path:
    """``LONG_TEXT`` read ``readings`` times by different voices, as 16 kHz mono WAV."""
    out = folder / f"long-{readings}.wav"
    if out.exists():
        return out
    parts = []
    for i, (voice, wpm) in enumerate(READINGS[i % len(READINGS)] for i in range(readings)):
        part = folder / f"reading-{i}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(part), LONG_TEXT],
            check=True,
            capture_output=True,
        )
        parts.append(str(part))
    subprocess.run(
        ["sox", *parts, "-r", "16000", "-c", "1", str(out)], check=True, capture_output=True
    )
    return out


def make_tone(path: Path, seconds: float = 0.5) -> Path:
    """A 330 Hz sine tone (folders made as needed). Decoded with ``--speed accurate
    --no-vad-filter`` (sequential, every window) a 90 s tone keeps the engine busy for seconds;
    with VAD (the default) it finishes at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(path), "synth", str(seconds), "sine", "330"],
        check=True,
        capture_output=True,
    )
    return path


def short_word_clip(path: Path, text: str = "hello world") -> Path:
    """A clip of one or two spoken words (well under a second of speech) as mp3."""
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = path.with_suffix(".wav")
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    _ffmpeg("-i", str(wav), "-ac", "1", "-ar", "16000", "-b:a", "32k", str(path))
    wav.unlink()
    return path


def long_speech(path: Path, repeats: int) -> Path:
    """The repo's sample spoken ``repeats`` times in a row (about 11.4 s each), as mp3."""
    _ffmpeg(
        "-stream_loop", str(repeats - 1), "-i", str(SAMPLE), "-ac", "1", "-b:a", "32k", str(path)
    )
    return path


def silence_mp3(path: Path, hours: float) -> Path:
    """``hours`` of silence as a compact mp3 (8 kHz, 8 kbit/s: ~3.6 MB per hour).

    Ten minutes are encoded once and the frames repeated: mp3 frames stand alone, so the
    concatenation is a valid stream of the full length and costs no encoding time.
    """
    piece = path.with_name(path.stem + ".piece.mp3")
    _ffmpeg(
        "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", "600",
        "-c:a", "libmp3lame", "-b:a", "8k", "-write_xing", "0", "-id3v2_version", "0",
        str(piece),
    )  # fmt: skip
    data = piece.read_bytes()
    piece.unlink()
    path.write_bytes(data * max(1, round(hours * 6)))
    return path


def hostile_files(directory: Path) -> dict[str, Path]:
    """Files that claim to be audio and are not (or barely are), by a short name."""
    directory.mkdir(parents=True, exist_ok=True)
    sample = SAMPLE.read_bytes()
    files = {
        "empty.mp3": b"",
        "text.mp3": b"this is a shopping list, not a song\n" * 50,
        "random.wav": bytes((i * 7919 + 13) % 256 for i in range(40_000)),
        "elf.mp3": b"\x7fELF\x02\x01\x01" + b"\x00" * 4000,
        "truncated.mp3": sample[: len(sample) // 7],
        "header-only.mp3": sample[:200],
        "huge-header.wav": _bogus_wav(),
        "zero-length.wav": _wav(b""),
    }
    out = {}
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        out[name] = path
    return out


def _wav(frames: bytes, *, rate: int = 16000, data_size: int | None = None) -> bytes:
    size = len(frames) if data_size is None else data_size
    header = b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + fmt + b"data" + struct.pack("<I", size & 0xFFFFFFFF) + frames


def _bogus_wav() -> bytes:
    """A WAV whose header claims 4 GB of data and an absurd fmt chunk, with 1 KB behind it."""
    head = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 0x7FFFFFF0, 1, 65535, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0)
    return head + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF) + b"\x01\x02" * 512


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
        timeout=60,
    )
