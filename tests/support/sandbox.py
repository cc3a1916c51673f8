"""A sandbox: temporary config, state and data dirs, a private TMPDIR, a loopback port, and
the environment that points whispercli processes at them (and tags them for the reaper).

``run_cli`` / ``start_cli`` run ``python -m whispercli`` in a sandbox as a separate process
(its own session); for the CLI in-process use :class:`support.cli.Cli`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support.net import free_port
from support.procs import TAG


@dataclass
class Sandbox:
    """Temporary config/state/data dirs (and TMPDIR) under ``root``, and ``env()``."""

    root: Path
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        for d in (self.config_dir, self.state_dir, self.data_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def tmp_dir(self) -> Path:
        """TMPDIR of every process in the sandbox: their scratch files stay in here."""
        return self.root / "tmp"

    @property
    def key_file(self) -> Path:
        return self.config_dir / "api-key"

    @property
    def jobs_file(self) -> Path:
        return self.state_dir / "jobs.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **extra: str) -> dict[str, str]:
        """This process's environment without whispercli's own variables, plus the sandbox's
        dirs, URL, TMPDIR and reaper tag (and ``extra``)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("WHISPERCLI_", "TIYARO_")) and k != "PYTEST_CURRENT_TEST"
        }
        env.update(
            WHISPERCLI_CONFIG_DIR=str(self.config_dir),
            WHISPERCLI_STATE_DIR=str(self.state_dir),
            WHISPERCLI_DATA_DIR=str(self.data_dir),
            WHISPERCLI_URL=self.url,
            TMPDIR=str(self.tmp_dir),
            HF_HUB_OFFLINE="1",
            NO_COLOR="1",
            PYTHONUNBUFFERED="1",
        )
        env[TAG] = str(self.root)
        env.update(extra)
        return env

    def key(self) -> str:
        return self.key_file.read_text(encoding="utf-8").strip()

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key()}"}


def run_cli(
    sandbox: Sandbox,
    *args: str,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m whispercli ARGS`` in the sandbox; output decoded as text."""
    proc = subprocess.run(
        [sys.executable, "-m", "whispercli", *args],
        env=env or sandbox.env(),
        input=input,
        capture_output=True,
        timeout=timeout,
        cwd=cwd or sandbox.root,
        start_new_session=True,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def start_cli(
    sandbox: Sandbox, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m whispercli ARGS`` in the background (its own session, text pipes)."""
    return subprocess.Popen(
        [sys.executable, "-m", "whispercli", *args],
        env=env or sandbox.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=sandbox.root,
        start_new_session=True,
    )
