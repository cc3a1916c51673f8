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
from clihelpers import SAMPLE_MP3, Cli
from local_server import ServerHandle

# (espeak-ng voice, text): the French is the sentence the guard once missed on an AVX-512 CPU.
SPEECH = {
    "french": (
        "fr",
        "Bonjour à tous, merci d'être venus ce matin. Nous allons parler du budget de la "
        "ville, des nouvelles écoles et des travaux sur le pont avant l'hiver.",
    ),
    "german": ("de", "Wir sprechen heute über den Haushalt der Stadt und die neuen Schulen."),
    "spanish": ("es", "Mi hermano vive en Sevilla desde hace diez años con su mujer y sus hijos."),
    "english": ("en-us", "Please remind me to call the dentist at three o'clock tomorrow."),
    "scottish": ("en-gb-scotland", "The library will extend its opening hours from next month."),
}
FOREIGN = ("french", "german", "spanish")
ENGLISH = ("english", "scottish", "sample")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    made = {"sample": SAMPLE_MP3, "silence": folder / "silence.wav"}
    for name, (voice, text) in SPEECH.items():
        made[name] = folder / f"{name}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(made[name]), text], check=True)
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(made["silence"]), "trim", "0", "10"],
        check=True,
    )
    return made


@pytest.fixture(scope="module")
def run(
    server: ServerHandle, clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
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
    server: ServerHandle, clips: dict[str, Path], tmp_path: Path
) -> None:
    plain = Cli(tmp_path / "cli", server).run("transcribe", str(clips["french"]))
    assert plain.code == 0 and "-m small" in plain.err and "warning" not in plain.out


def test_silence_gives_an_empty_transcript_unless_vad_is_off(
    server: ServerHandle, clips: dict[str, Path], tmp_path: Path
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
