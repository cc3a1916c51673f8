"""Doubtful transcripts end to end: other languages on the English-only model, and silence.

The low-confidence guard (whispercli/server/engine/quality.py) is calibrated by
bench/quality_guard.py on 12 languages and English voices, accents and real recordings; these
few clips check it through the real server and CLI: each language warned, each English clip not.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import quality_guard
from support.cli import Cli
from support.servers import Server

# Clips of the calibration set (bench/quality_guard.py) with a wide margin on both sides of the
# line, on this CPU and as an AVX2 CPU decodes them; fr-test is the sentence the guard once
# missed. The English: two espeak-ng voices (en-us; en-029+f2, a Caribbean accent) and the
# repository's real recording.
FOREIGN = ("fr-test", "de-0", "es-0")
ENGLISH = ("en-01-0", "en-01-4", "real-sample")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    made = {"silence": folder / "silence.wav"}
    for item in quality_guard.all_items(None):
        if item.name in (*FOREIGN, *ENGLISH):
            made[item.name] = folder / f"{item.name}.wav"
            quality_guard.render(item, made[item.name], folder)
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(made["silence"]), "trim", "0", "10"],
        check=True,
    )
    return made


@pytest.fixture(scope="module")
def run(
    server: Server, clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict[str, Any]], str]:
    """Every speech clip transcribed in one CLI run: (name -> result, stderr)."""
    cli = Cli(tmp_path_factory.mktemp("cli"), server)
    names = {str(clips[n]): n for n in (*FOREIGN, *ENGLISH)}
    done = cli.run("transcribe", "--json", *names)
    assert done.code == 0, done.err
    return {names[item["input"]]: item["result"] for item in json.loads(done.out)}, done.err


@pytest.mark.parametrize("name", FOREIGN)
def test_another_language_on_the_english_model_is_warned(
    run: tuple[dict[str, dict[str, Any]], str], clips: dict[str, Path], name: str
) -> None:
    results, err = run
    [warning] = [w for w in results[name]["warnings"] if "low-confidence" in w]
    assert "multilingual" in warning and "-m small" in warning
    assert f"whispercli: warning: {clips[name]}: {warning}" in err


@pytest.mark.parametrize("name", ENGLISH)
def test_english_is_not_warned(run: tuple[dict[str, dict[str, Any]], str], name: str) -> None:
    result = run[0][name]
    assert result["warnings"] == [] and result["text"].strip()


def test_without_json_the_warning_goes_to_stderr_only(
    server: Server, clips: dict[str, Path], tmp_path: Path
) -> None:
    plain = Cli(tmp_path / "cli", server).run("transcribe", str(clips["fr-test"]))
    assert plain.code == 0 and "-m small" in plain.err and "warning" not in plain.out


def test_silence_gives_an_empty_transcript_unless_vad_is_off(
    server: Server, clips: dict[str, Path], tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "cli", server)
    done = cli.run("transcribe", "--json", str(clips["silence"]))
    assert done.code == 0, done.err
    [item] = json.loads(done.out)
    assert item["result"]["text"] == "" and item["result"]["segments"] == []
    assert item["result"]["warnings"] == ["no speech was found in 10.0 s of audio"]
    raw = cli.run("transcribe", "--json", "--no-vad-filter", str(clips["silence"]))
    assert raw.code == 0, raw.err
    assert json.loads(raw.out)[0]["result"]["text"].strip()  # Whisper alone hears something


def test_a_very_short_clip_warns_instead_of_printing_an_empty_line(
    server: Server, tmp_path: Path
) -> None:
    """Issue 19, polish: a 0.3 s clip gave "\\n" on stdout and no warning."""
    clip = tmp_path / "blip.wav"
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(clip), "synth", "0.3", "sine", "330"],
        check=True,
    )
    done = Cli(tmp_path / "cli", server).run("transcribe", str(clip))
    assert done.code == 0, done.err
    assert done.out == ""
    assert f"whispercli: warning: {clip}: no speech was found in 0.3 s of audio" in done.err
