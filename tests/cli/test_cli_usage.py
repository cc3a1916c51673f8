"""Usage errors: the command's usage line, then one ``whispercli: error:`` line and a hint, as
every other error reads (issue 19, item 14); exit 2 (the documented code), with the click that
typer runs on (recent typer bundles its own as ``typer._click``)."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import Cli, assert_one_error_line
from support.samples import REPO, SAMPLE_MP3

from whispercli.errors import ExitCode

SAMPLE = str(SAMPLE_MP3)
NOWHERE = {"WHISPERCLI_URL": "http://127.0.0.1:9"}  # nothing must be contacted


@pytest.mark.parametrize(
    "args",
    [
        ["transcribe", "--bogus", SAMPLE],  # bad option
        ["transcribe"],  # missing argument
        ["nosuch"],  # unknown command
        ["transcribe", "-f", "xml", SAMPLE],  # bad choices
        ["transcribe", "--task", "dance", SAMPLE],
        ["transcribe", "--speed", "turbo", SAMPLE],
        ["submit", "--tier", "gold", SAMPLE],
        ["transcribe", "--beam-size", "0", SAMPLE],  # bad numbers
        ["transcribe", "-j", "0", SAMPLE],
        ["server", "run", "--port", "99999"],
        ["server", "run", "--device", "gpu"],  # choices of the server's options
        ["worker", "run", "--database", "x", "--speed", "turbo"],
        ["wait", "--timeout", "abc", "last"],  # bad durations
        ["jobs", "prune", "--older-than", "xyz"],
        ["upload", str(REPO / "samples")],  # a directory where a file is wanted
        ["transcribe", "-o", str(SAMPLE_MP3), SAMPLE],  # a file where a directory is wanted
        ["status", "a", "b"],  # too many arguments
    ],
    ids=lambda args: " ".join(Path(a).name for a in args),
)
def test_usage_errors_exit_2_with_the_usage_line_and_one_error_line(
    tmp_path: Path, args: list[str]
) -> None:
    done = Cli(tmp_path / "cli").run(*args, **NOWHERE)
    assert done.code == ExitCode.USAGE, done.err
    assert done.out == ""
    usage, *rest = done.err.splitlines()
    assert usage.startswith("Usage: whispercli"), done.err
    assert_one_error_line("\n".join(rest))  # `whispercli: error: ...`, no Click "Error:" block
    assert rest[-1].startswith("whispercli: hint: see `whispercli") and "--help`" in rest[-1]
    assert "Error: " not in done.err and "Try '" not in done.err, done.err
    assert "error: unexpected" not in done.err and "--debug" not in done.err


def test_a_usage_error_names_the_option_and_the_command(tmp_path: Path) -> None:
    done = Cli(tmp_path / "cli").run("wait", "--timeout", "abc", "last", **NOWHERE)
    assert done.err.splitlines() == [
        "Usage: whispercli wait [OPTIONS] [JOB]...",
        "whispercli: error: invalid value for '--timeout': 'abc' is not a duration "
        "(e.g. 90, 90s, 30m, 1h30m)",
        "whispercli: hint: see `whispercli wait --help`",
    ]


def test_bad_choices_name_the_choices(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    for option, bad, choices in (
        ("--task", "dance", ("transcribe", "translate")),
        ("--speed", "turbo", ("accurate", "default", "fast")),
        ("-f", "xml", ("txt", "srt", "vtt", "tsv", "json", "all")),
    ):
        err = cli.run("transcribe", option, bad, SAMPLE, **NOWHERE).err
        assert bad in err and all(c in err for c in choices), err


def _all_commands() -> list[list[str]]:
    import typer.main

    from whispercli.cli.app import app

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if subs is None:
            found.append(path)
            return
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def test_help_shows_choices_and_plain_metavars(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    text = cli.run("transcribe", "--help").out
    for shown in (
        "[transcribe|translate]",
        "[accurate|default|fast]",
        "[cpuflex|gpuflex]",
        "[txt|srt|vtt|tsv|json|all]",
        "whispercli models",
        "Usage: whispercli transcribe [OPTIONS] FILE|URL|DIR|-...\n",
    ):
        assert shown in text, (shown, text)
    assert "[JOB]...\n" in cli.run("wait", "--help").out
    assert "Usage: whispercli status [OPTIONS] [JOB]\n" in cli.run("status", "--help").out
    commands = _all_commands()
    assert ["jobs", "prune"] in commands and ["models", "list"] in commands
    for command in [[], *commands]:  # the root group too (its global options)
        done = cli.run(*command, "--help")
        assert done.code == 0, (command, done.err)
        # No type tags (<str>, <list[str]>, <int range>) and no doubled brackets or dots.
        assert not re.search(r"<[a-z][a-z_ \[\]]*>", done.out.replace("<stem>.<format>", ""))
        assert "[[" not in done.out and "...." not in done.out, (command, done.out)
        # Arguments by their metavar (JOB, FILE), not a parameter's name (JOB_REF).
        assert "_" not in done.out.splitlines()[0], (command, done.out)


def test_models_lists_what_the_server_has(server: object, tmp_path: Path) -> None:
    """A remote endpoint: `models list` shows its /v1/health names, not this machine's."""
    done = Cli(tmp_path / "cli", server).run("models", "list", "--json")
    assert done.code == 0, done.err
    listed = json.loads(done.out)
    assert "tiny" in listed["models"] and isinstance(listed["loadedModels"], list)
    refused = Cli(tmp_path / "cli", server).run("models", "list", "--available")
    assert refused.code == 2 and "--server" in refused.err


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.0, 3.0])
def test_ctrl_c_at_any_moment_says_interrupted(tmp_path: Path, delay: float) -> None:
    """SIGINT while the CLI loads (-X importtime marks typer's import: delay 0), while typer
    parses, or in a command's code before it has jobs (`transcribe -` reads a stdin that
    never ends): one line, exit 130. typer turned the KeyboardInterrupt into a silent 130."""
    proc = subprocess.Popen(
        [sys.executable, "-X", "importtime", "-m", "whispercli", "transcribe", "-"],
        env=Cli(tmp_path / "cli").subprocess_env(**NOWHERE),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # one line per module imported
            if "typer" in line:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    said = [line for line in err.splitlines() if not line.startswith("import time:")]
    # 130, or death by SIGINT (CPython re-raises SIGINT at exit when a KeyboardInterrupt landed
    # at an import/run boundary): a shell reports both as $? = 130.
    assert proc.returncode in (ExitCode.INTERRUPTED, -signal.SIGINT), err
    assert said == ["whispercli: interrupted"] and out == "", err


def test_server_options_list_their_choices(tmp_path: Path) -> None:
    """Issue 19, polish: `server run --speed/--device` did not list their choices."""
    cli = Cli(tmp_path / "cli")
    for command in (["server", "run"], ["worker", "run"]):
        text = cli.run(*command, "--help").out
        for shown in (
            "--speed [accurate|default|fast]",
            "--device [auto|cpu|cuda]",
            "--compute-type [auto|int8|int8_float16|float16|float32]",
            "--log-level [debug|info|warning|error]",
        ):
            assert shown in text, (command, shown, text)


def test_transcribe_dash_with_a_terminal_on_stdin_is_refused(tmp_path: Path) -> None:
    """Issue 19, item 9: it waited silently for audio that a terminal never sends."""
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "whispercli", "transcribe", "-"],
            env=Cli(tmp_path / "cli").subprocess_env(**NOWHERE),
            stdin=slave,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert_one_error_line(done.stderr)
    assert "stdin is a terminal; pipe audio in" in done.stderr
