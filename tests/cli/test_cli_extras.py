"""A command that needs an extra that is not installed exits 1 naming the extra and the pip
command (issue 19, item 1): every optional import (local, postgres, gpu), through the real
console entry point in a process where the extra's modules cannot be imported (a meta-path
finder refuses them, as a fresh venv without the extra would)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import Cli, assert_one_error_line
from support.net import free_port as find_free_port
from support.samples import REPO, SAMPLE_MP3

from whispercli.errors import ExitCode

WITHOUT = """
import sys

class Missing:
    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing(set(sys.argv[1].split(","))))
sys.argv = ["whispercli", *sys.argv[2:]]
from whispercli.__main__ import main
main()
"""
DSN = "postgresql://nobody@127.0.0.1:9/none"  # never reached: the import fails first
LOCAL = "pip install 'whispercli[local]'"
POSTGRES = "pip install 'whispercli[local,postgres]'"
GPU = "pip install 'whispercli[local,gpu]'"


def run_without(cli: Cli, modules: str, *args: str) -> subprocess.CompletedProcess[str]:
    """whispercli ARGS in a process where ``modules`` (comma-separated) cannot be imported;
    a server it starts all the same (the bug this guards against) is stopped."""
    port = str(find_free_port())
    try:
        return subprocess.run(
            [sys.executable, "-c", WITHOUT, modules, *args],
            env=cli.subprocess_env(WHISPERCLI_LOCAL_PORT=port, HF_HUB_OFFLINE="1"),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    finally:
        if args[0] in ("transcribe", "server") and args[1:2] != ["migrate"]:
            cli.sub("server", "stop", "--port", port, timeout=60)


@pytest.mark.parametrize(
    ("modules", "args", "said", "pip"),
    [
        (
            "psycopg",
            ["server", "migrate", "--database", DSN],
            "server migrate needs the postgres",
            POSTGRES,
        ),
        (
            "procrastinate",
            ["worker", "run", "--database", DSN],
            "worker run needs the postgres",
            POSTGRES,
        ),
        (
            "psycopg_pool",
            ["server", "run", "--database", DSN],
            "--database needs the postgres",
            POSTGRES,
        ),
        ("fastapi", ["server", "run"], "server run needs the local", LOCAL),
        ("uvicorn", ["server", "start"], "server start needs the local", LOCAL),
        (
            "faster_whisper",
            ["worker", "run", "--database", DSN],
            "worker run needs the local",
            LOCAL,
        ),
        ("fastapi", ["transcribe", str(SAMPLE_MP3)], "embedded server", LOCAL),
        ("huggingface_hub", ["models", "pull", "small"], "models pull needs the local", LOCAL),
        # ctranslate2 refused too, so that no machine sees a CUDA device: the plan is decided
        ("nvidia,ctranslate2", ["server", "run", "--device", "cuda"], "the gpu extra", GPU),
    ],
    ids=lambda value: value if isinstance(value, str) and "," not in value else None,
)
def test_a_missing_extra_is_named_with_its_pip_command(
    tmp_path: Path, modules: str, args: list[str], said: str, pip: str
) -> None:
    cli = Cli(tmp_path / "cli")
    done = run_without(cli, modules, *args)
    assert done.returncode == ExitCode.ERROR, done.stderr
    assert said in done.stderr and pip in done.stderr, done.stderr
    assert "ModuleNotFoundError" not in done.stderr and "unexpected" not in done.stderr
    assert_one_error_line(done.stderr)
    assert not (Path(cli.env["WHISPERCLI_STATE_DIR"]) / "jobs.json").exists()


def test_a_module_no_extra_installs_is_still_unexpected(tmp_path: Path) -> None:
    """Only an extra's modules are named as a missing extra: anything else stays an
    unexpected error (with --debug's hint)."""
    from whispercli.extras import extra_of

    assert extra_of("psycopg.rows") == "postgres" and extra_of("nvidia.cudnn") == "gpu"
    assert extra_of("faster_whisper.transcribe") == "local" and extra_of("numpy") == "local"
    assert extra_of("requests") is None and extra_of(None) is None
