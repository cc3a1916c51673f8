"""bench/make_speech.py on a tiny subset: a well-formed manifest and 16 kHz mono clips."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import make_speech
import pytest


def test_recipe_references_exist_and_are_distinct() -> None:
    names = [c.name for c in make_speech.CLIPS]
    assert len(names) == len(set(names))
    for clip in make_speech.CLIPS:
        assert make_speech.reference_text(clip).strip()
        assert 130 <= clip.wpm <= 175
    assert any(c.noise for c in make_speech.CLIPS)
    assert len({c.voice for c in make_speech.CLIPS}) >= 5


def test_subset_manifest_is_well_formed(tmp_path: Path) -> None:
    manifest = make_speech.build(tmp_path, {"s1", "s2"})  # s2 has added noise
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert [c["name"] for c in on_disk["clips"]] == ["s1", "s2"]
    for entry in on_disk["clips"]:
        with wave.open(str(tmp_path / entry["audio"])) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
            assert abs(w.getnframes() / 16000 - entry["seconds"]) < 0.01
        assert 2 < entry["seconds"] < 15
        assert entry["reference"] == make_speech.reference_text(
            next(c for c in make_speech.CLIPS if c.name == entry["name"])
        )
    assert on_disk["total_seconds"] == pytest.approx(sum(e["seconds"] for e in on_disk["clips"]))


def test_whole_set_is_long_enough(tmp_path: Path) -> None:
    """The issue asks for >= 10 minutes of speech and one file of >= 2 minutes (takes ~2 s)."""
    manifest = make_speech.build(tmp_path)
    assert manifest["total_seconds"] >= 600
    assert max(c["seconds"] for c in manifest["clips"]) >= 120


def test_generation_is_deterministic(tmp_path: Path) -> None:
    make_speech.build(tmp_path / "a", {"s2"})
    make_speech.build(tmp_path / "b", {"s2"})
    first = (tmp_path / "a" / "clips" / "s2.wav").read_bytes()
    assert first == (tmp_path / "b" / "clips" / "s2.wav").read_bytes()
