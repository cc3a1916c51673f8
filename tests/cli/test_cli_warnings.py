"""Doubtful transcripts end to end: French on the English-only model, silence, with the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from clihelpers import Cli
from local_server import ServerHandle

FRENCH = (
    "Bonjour à tous, merci d'être venus ce matin. Nous allons parler du budget de la ville, "
    "des nouvelles écoles et des travaux sur le pont avant l'hiver."
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    french, silence = folder / "french.wav", folder / "silence.wav"
    subprocess.run(["espeak-ng", "-v", "fr", "-w", str(french), FRENCH], check=True)
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(silence), "trim", "0", "10"], check=True
    )
    return {"french": french, "silence": silence}


def test_french_on_the_english_model_is_transcribed_with_a_warning(
    server: ServerHandle, clips: dict[str, Path], tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "cli", server)
    done = cli.run("transcribe", "--json", str(clips["french"]))
    assert done.code == 0, done.err
    [item] = json.loads(done.out)
    [warning] = item["result"]["warnings"]
    assert "low-confidence" in warning and "multilingual" in warning
    assert f"whispercli: warning: {clips['french']}: {warning}" in done.err
    plain = cli.run("transcribe", "--force", str(clips["french"]))
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


def test_a_very_short_clip_warns_instead_of_printing_an_empty_line(
    server: ServerHandle, tmp_path: Path
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
