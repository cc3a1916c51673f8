"""whispercli for CLI tests: in-process (fast: ``Cli.run``) or as a subprocess (when processes
matter: ``Cli.sub``), with its own temporary config/state/data dirs and, where given, a
server's URL and key. The ``cli`` fixture (tests/conftest.py) gives one per test."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.samples import REPO
from typer.testing import CliRunner

_OWN_VARS = (
    "WHISPERCLI_URL",
    "WHISPERCLI_API_KEY",
    "WHISPERCLI_PROFILE",
    "WHISPERCLI_LOCAL_PORT",
    "TIYARO_API_KEY",
    "EDENAI_API_KEY",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "NO_COLOR",
    "WHISPERCLI_DEBUG",
)


@dataclass
class Outcome:
    code: int
    out: str
    err: str


class Cli:
    """whispercli with its own directories (``env``), pointed at a server when given."""

    def __init__(self, root: Path, server: Any = None) -> None:
        self.root = root
        self.env: dict[str, str] = {}
        for name in ("config", "state", "data"):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            self.env[f"WHISPERCLI_{name.upper()}_DIR"] = str(folder)
        if server is not None:
            self.env["WHISPERCLI_URL"] = server.url
            self.env["WHISPERCLI_API_KEY"] = server.api_key

    @property
    def jobs_file(self) -> Path:
        return Path(self.env["WHISPERCLI_STATE_DIR"]) / "jobs.json"

    def run(self, *args: str, input: str | bytes | None = None, **env: str) -> Outcome:
        """In-process: ``main()`` as the console script runs it, exit code included."""
        from whispercli.cli.app import main

        full_env: dict[str, str | None] = {v: None for v in _OWN_VARS}
        full_env.update(self.env)
        full_env.update(env)
        runner = CliRunner()
        old_argv = sys.argv
        sys.argv = ["whispercli", *args]
        try:
            with runner.isolation(input=input, env=full_env) as (out, err, _):
                try:
                    main()
                    code = 0
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else 1
                sys.stdout.flush()  # as process exit would
                sys.stderr.flush()
                return Outcome(code, out.getvalue().decode(), err.getvalue().decode())
        finally:
            sys.argv = old_argv

    def subprocess_env(self, **env: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k not in _OWN_VARS}
        return {**base, **self.env, **env}

    def sub(
        self, *args: str, timeout: float = 120, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """As a separate process (``python -m whispercli``), stdin closed unless given."""
        return subprocess.run(
            [sys.executable, "-m", "whispercli", *args],
            env=self.subprocess_env(**env),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """As a separate process in the background (stdin closed, stdout and stderr text
        pipes): for a test that signals it or watches it while it runs."""
        return subprocess.Popen(
            [sys.executable, "-m", "whispercli", *args],
            env=self.subprocess_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )


def assert_one_error_line(err: str) -> None:
    """Failures print one 'error:' line (plus an optional 'hint:' line), never a traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("whispercli: error:")]
    assert len(errors) == 1, err
    assert all(line.startswith("whispercli: ") for line in lines), err


def in_a_terminal(cli: Cli, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run whispercli with stdout and stderr on a pseudo-terminal; (exit code, all output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "whispercli", *args],
        env=cli.subprocess_env(COLUMNS="200"),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        cwd=REPO,
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


@dataclass
class Terminal:
    lines: list[tuple[float, str]]
    """Each stdout line and when it was complete (seconds since the start)."""
    err: str
    code: int
    ended: float

    @property
    def text(self) -> str:
        return "".join(line for _, line in self.lines)


def on_terminal(argv: list[str], env: dict[str, str]) -> Terminal:
    """Run ``argv`` with stdout and stderr on two pseudo-terminals, timing each stdout line."""
    out_master, out_slave = pty.openpty()
    err_master, err_slave = pty.openpty()
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave, env=env, cwd=REPO
    )
    os.close(out_slave)
    os.close(err_slave)
    pending, lines, err = "", list[tuple[float, str]](), b""
    live = {out_master, err_master}
    try:
        while live:
            for fd in select.select(list(live), [], [], 1.0)[0]:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the child closed its side
                    data = b""
                if not data:
                    live.discard(fd)
                elif fd == err_master:
                    err += data
                else:
                    pending += data.decode().replace("\r\n", "\n")
                    *done, pending = pending.split("\n")
                    lines += [(time.monotonic() - started, line + "\n") for line in done]
        code = proc.wait(30)
    finally:
        proc.kill()
        os.close(out_master)
        os.close(err_master)
    return Terminal(lines, err.decode(errors="replace"), code, time.monotonic() - started)


def interrupt_while_waiting(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C a CLI started with ``--debug`` once it has asked the server something (so it is
    waiting, not still starting up, which a fixed sleep could not tell on a loaded machine:
    a Ctrl-C while typer parses exits 130 silently); its (stdout, stderr)."""
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "whispercli: debug:" in line:
            break
    proc.send_signal(signal.SIGINT)
    try:
        out, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()  # a CLI that ignored the Ctrl-C is not left behind (no-op once it exited)
    return out, "".join(seen) + rest
