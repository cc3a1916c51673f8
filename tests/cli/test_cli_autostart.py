"""Auto-start: with the local default endpoint (port from WHISPERCLI_LOCAL_PORT) and nothing
listening, the CLI starts the embedded server detached; the test stops it at the end."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path

from support.cli import Cli
from support.samples import REPO, SAMPLE_MP3, SAMPLE_TEXT, assert_sample, is_sample


def _stop(cli: Cli, port: int) -> None:
    cli.sub("server", "stop", "--port", str(port), timeout=60)
    pid_file = Path(cli.env["WHISPERCLI_STATE_DIR"]) / f"server-{port}.pid"
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        pid = json.loads(pid_file.read_text())["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def readme_quick_start() -> tuple[str, str]:
    """README's quick-start command (its first line) and the text it says is printed."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    console = re.search(r"```console\n(.*?)```", quick, re.S)
    printed = re.search(r"It prints the sample's text:\n\n```\n(.*?)```", quick, re.S)
    assert console and printed, "README's quick start lost its command or its output block"
    command = console.group(1).splitlines()[0].split("&&", 1)[1].strip()
    return command, printed.group(1)


def test_transcribe_auto_starts_the_local_server(tmp_path: Path, free_port: int) -> None:
    """README's quick start, as a new user runs it: it prints the text README shows (the
    sample's reference, give or take a word: int8 kernels differ between CPUs)."""
    command, printed = readme_quick_start()
    assert command == "whispercli transcribe samples/sample.mp3"
    cli = Cli(tmp_path / "cli")
    env = {"WHISPERCLI_LOCAL_PORT": str(free_port), "HF_HUB_OFFLINE": "1"}
    try:
        shown = json.loads(cli.sub("config", "show", "--json", **env).stdout)
        assert shown["auto_start"] is True
        assert shown["url"] == f"http://127.0.0.1:{free_port}"
        done = cli.sub(*command.split()[1:], timeout=180, **env)
        assert done.returncode == 0, done.stderr
        assert printed.strip() == SAMPLE_TEXT.strip(), "README shows another text than the sample's"
        assert_sample(done.stdout)
        pid_file = Path(cli.env["WHISPERCLI_STATE_DIR"]) / f"server-{free_port}.pid"
        assert pid_file.exists()
        # A second command finds it running and does not start another.
        started = time.monotonic()
        again = cli.sub("status", **env)
        assert again.returncode == 0 and "success" in again.stdout
        assert time.monotonic() - started < 10
    finally:
        _stop(cli, free_port)
    gone = cli.sub("status", **{"WHISPERCLI_URL": f"http://127.0.0.1:{free_port}"})
    assert gone.returncode == 6


def test_one_cli_with_several_files_from_a_cold_start(tmp_path: Path, free_port: int) -> None:
    """One CLI, three files, nothing listening: the parallel jobs all wait for the one server
    the first of them auto-starts (before, the others failed 'connection refused', exit 6)."""
    cli = Cli(tmp_path / "cli")
    env = {"WHISPERCLI_LOCAL_PORT": str(free_port), "HF_HUB_OFFLINE": "1"}
    folder = tmp_path / "batch"
    folder.mkdir()
    for name in ("a", "b", "c"):
        (folder / f"{name}.mp3").write_bytes(SAMPLE_MP3.read_bytes())
    files = [str(folder / f"{name}.mp3") for name in ("a", "b", "c")]
    try:
        done = cli.sub("transcribe", "-j", "3", "--force", *files, timeout=240, **env)
        assert done.returncode == 0, done.stderr
        transcripts = re.split(r"^==> .* <==\n", done.stdout, flags=re.M)[1:]
        assert len(transcripts) == 3 and all(is_sample(t) for t in transcripts), done.stdout
        log = (Path(cli.env["WHISPERCLI_STATE_DIR"]) / "server.log").read_text()
        assert log.count(f"reachable as http://127.0.0.1:{free_port}") == 1, log
        pid_files = list(Path(cli.env["WHISPERCLI_STATE_DIR"]).glob("server-*.pid"))
        assert [p.name for p in pid_files] == [f"server-{free_port}.pid"]
    finally:
        _stop(cli, free_port)
