"""Time to first text: ``whispercli transcribe FILE`` on a terminal prints each segment as soon
as it is decoded, for the embedded server's own protocol (partial segments in its poll body)
and for the OpenAI-compatible one (a stream); piped, the output is the final transcript, byte
for byte. The CLI runs on pseudo-terminals (stdout and stderr each its own, so the transcript
and the progress display can be read apart) against a server running the fake engine: ten
segments, one every 0.4 s."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import Cli, on_terminal
from support.samples import SAMPLE_MP3
from support.servers import Server, serve_module

from whispercli.server.engine.fake import TEXT, TICKS

FAKE_SECONDS = 4.0
TRANSCRIPT = (TEXT.strip() + "\n") * TICKS


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_module(tmp_path_factory, fake_engine=FAKE_SECONDS)


def _cli(tmp_path: Path, server: Server, backend: str) -> tuple[Cli, list[str]]:
    if backend == "tiyaro":
        return Cli(tmp_path / "cli", server), []
    cli = Cli(tmp_path / "cli")
    (Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").write_text(
        f'[profiles.oa]\nurl = "{server.url}/v1"\nbackend = "openai"\n'
        f'api_key = "{server.api_key}"\n'
    )
    return cli, ["--profile", "oa"]


@pytest.mark.parametrize("backend", ["tiyaro", "openai"])
def test_transcribe_on_a_terminal_prints_segments_as_they_are_decoded(
    fake_server: Server, tmp_path: Path, backend: str
) -> None:
    cli, profile = _cli(tmp_path, fake_server, backend)
    argv = [sys.executable, "-m", "whispercli", *profile, "transcribe", str(SAMPLE_MP3)]
    env = cli.subprocess_env(TERM="xterm-256color", COLUMNS="100")
    shown = on_terminal(argv, env)
    assert shown.code == 0, shown.err
    assert shown.text == TRANSCRIPT
    first, last = shown.lines[0][0], shown.lines[-2][0]
    # the first segment long before the end, and the others one by one, not in one burst
    assert shown.ended - first > 0.5 * FAKE_SECONDS, (first, shown.ended)
    assert last - first > 0.4 * FAKE_SECONDS, [t for t, _ in shown.lines]
    assert "sample.mp3" in shown.err  # the progress display was there until the text came
    piped = cli.sub(*profile, "transcribe", "--force", str(SAMPLE_MP3))
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == TRANSCRIPT  # the final transcript, byte for byte
