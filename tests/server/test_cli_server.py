"""`whispercli server run|start|stop|status` and the auto-start launcher, as real processes."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from support.net import free_port
from support.procs import gone
from support.protocol import submit, upload, wait_done
from support.samples import REPO
from support.servers import ServerFactory

from whispercli.server.settings import FAKE_ENGINE_ENV

WHISPERCLI = [sys.executable, "-m", "whispercli"]
FAKE_JOB = 0.1
"""These tests run processes and read logs; no transcript is looked at: the fake engine."""


def _dirs(tmp_path: Path) -> dict[str, str]:
    """The dirs of a test, and the fake engine for any server started with them."""
    return {
        "WHISPERCLI_CONFIG_DIR": str(tmp_path / "config"),
        "WHISPERCLI_STATE_DIR": str(tmp_path / "state"),
        "WHISPERCLI_DATA_DIR": str(tmp_path / "data"),
        FAKE_ENGINE_ENV: str(FAKE_JOB),
    }


def _cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WHISPERCLI, *args],
        env={**os.environ, **env},
        capture_output=True,  # a detached child that kept these pipes would hang this call
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _server_pids(port: int) -> list[int]:
    """Processes running `whispercli server run ... --port PORT`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if b"whispercli" in argv and b"run" in argv and str(port).encode() in argv:
                pids.append(int(proc.name))
    return pids


@pytest.fixture
def cleanup_port() -> object:
    """Kill whatever server a test left on its port, whatever happened."""
    ports: list[int] = []
    yield ports
    for port in ports:
        for pid in _server_pids(port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_start_status_stop(tmp_path: Path, cleanup_port: list[int]) -> None:
    env = _dirs(tmp_path)
    port = free_port()
    cleanup_port.append(port)
    started = _cli(env, "server", "start", "--port", str(port))
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"http://127.0.0.1:{port}"
    assert "log:" in started.stderr
    [pid] = _server_pids(port)

    status = _cli(env, "server", "status", "--port", str(port), "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert body["status"] == "ok" and body["pid"] == pid and "tiny" in body["models"]
    human = _cli(env, "server", "status", "--port", str(port))
    assert f"running at http://127.0.0.1:{port}" in human.stdout

    again = _cli(env, "server", "start", "--port", str(port))
    assert again.returncode == 0 and "already answers" in again.stderr
    assert _server_pids(port) == [pid]

    stopped = _cli(env, "server", "stop", "--port", str(port))
    assert stopped.returncode == 0, stopped.stderr
    assert gone(pid, 20)
    assert not (tmp_path / "state" / f"server-{port}.pid").exists()
    assert (tmp_path / "state" / "server.log").exists()
    down = _cli(env, "server", "status", "--port", str(port))
    assert down.returncode == 6
    assert "no server answers" in down.stderr
    assert _cli(env, "server", "stop", "--port", str(port)).returncode == 0  # nothing to stop


def test_two_concurrent_auto_starts_end_with_one_server(
    tmp_path: Path, cleanup_port: list[int]
) -> None:
    env = _dirs(tmp_path)
    port = free_port()
    cleanup_port.append(port)
    url = f"http://127.0.0.1:{port}"
    code = (
        "import sys; from whispercli.launcher import ensure_local_server; "
        f"print(ensure_local_server({url!r}, 60))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=90) for p in procs]  # returns: no inherited pipes
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(out.strip() for out, _ in outputs) == ["False", "True"]  # one started it
    pids = _server_pids(port)
    assert len(pids) == 1
    key = (tmp_path / "config" / "api-key").read_text().strip()
    health = requests.get(f"{url}/v1/health", headers={"Authorization": f"Bearer {key}"}, timeout=5)
    assert health.status_code == 200
    cmdline = Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
    assert b"--idle-timeout" in cmdline and b"600" in cmdline
    assert os.getsid(pids[0]) == pids[0]  # detached in its own session
    os.kill(pids[0], signal.SIGTERM)
    assert gone(pids[0], 20)


def test_idle_server_exits_by_itself(server_factory: ServerFactory) -> None:
    idle = server_factory.start("--idle-timeout", "2", fake_engine=FAKE_JOB)
    assert idle.proc.wait(timeout=30) == 0
    log = idle.log()
    # Issue 19, polish: why it exits (the setting that decides), and that it is gone.
    assert "idle: no request for" in log and "(--idle-timeout 2)" in log
    assert "the CLI starts the server again when it needs it" in log
    assert log.strip().splitlines()[-1].endswith(f"whispercli server on {idle.url} stopped")


def test_sigterm_stops_the_worker_too(server_factory: ServerFactory) -> None:
    handle = server_factory.start(fake_engine=FAKE_JOB)
    children = handle.children()
    assert children
    assert handle.stop() == 0
    assert all(gone(pid, 10) for pid in children)
    assert "Traceback" not in handle.log()


def test_non_loopback_bind_warns_and_logs_the_address_it_binds(
    server_factory: ServerFactory,
) -> None:
    exposed = server_factory.start("--host", "0.0.0.0", fake_engine=FAKE_JOB)
    assert "anyone who can reach this address" in exposed.log()
    assert f"listening on 0.0.0.0 port {exposed.port}" in exposed.log()


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) [\w.]+: ")


def test_one_log_format_and_a_quiet_shutdown(server_factory: ServerFactory) -> None:
    handle = server_factory.start(fake_engine=FAKE_JOB)
    job = submit(handle, upload(handle))
    assert wait_done(handle, job)["status"] == "success"
    assert handle.stop() == 0
    lines = [line for line in handle.log().splitlines() if line.strip()]
    assert any("uvicorn" in line for line in lines)  # uvicorn's own lines, in our format
    assert [line for line in lines if not LOG_LINE.match(line)] == []


def test_run_defaults_are_the_settings_defaults() -> None:
    from typer.main import get_command

    from whispercli.cli.server import app as server_app
    from whispercli.server.defaults import MIB
    from whispercli.server.settings import ServerSettings

    group = get_command(server_app)
    run = group.commands["run"]  # type: ignore[attr-defined]
    defaults = {p.name: p.default for p in run.params}
    settings = ServerSettings()
    assert defaults["host"] == settings.host
    assert defaults["max_upload_mb"] * MIB == settings.max_upload_bytes
    assert defaults["max_queue"] == settings.max_queue
    assert defaults["upload_url_ttl"] == settings.upload_url_ttl
    assert defaults["retention_hours"] * 3600 == settings.retention
    assert defaults["cpu_threads"] == settings.cpu_threads
    assert defaults["speed"] == settings.speed
    assert defaults["idle_timeout"] == settings.idle_timeout


def test_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    env = _dirs(tmp_path)
    key = tmp_path / "config" / "api-key"
    key.parent.mkdir()
    key.write_text("secret-key-value\n")
    key.chmod(0o644)
    proc = _cli(env, "server", "run", "--port", str(free_port()))
    assert proc.returncode == 1
    assert "readable by other users" in proc.stderr and "chmod 600" in proc.stderr
    assert "secret-key-value" not in proc.stderr + proc.stdout


def test_taken_port_is_a_clean_error(tmp_path: Path, server_factory: ServerFactory) -> None:
    running = server_factory.start(fake_engine=FAKE_JOB)
    proc = _cli(_dirs(tmp_path), "server", "run", "--port", str(running.port))
    assert proc.returncode == 1
    assert "cannot listen" in proc.stderr and "Traceback" not in proc.stderr
    assert running.proc.poll() is None


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("WHISPERCLI_HEARTBEAT_SECONDS", "abc", "above 0"),
        ("WHISPERCLI_STALLED_AFTER_SECONDS", "nan", "above 0"),
        ("WHISPERCLI_RETENTION_SWEEP_SECONDS", "90", "above 0 up to 59"),  # a cron of seconds
        (FAKE_ENGINE_ENV, "-1", "from 0"),
    ],
)
def test_a_bad_timing_variable_stops_server_and_worker_at_start_and_names_itself(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    """It was a bare "unexpected ValueError: could not convert string to float" (exit 1), or
    a negative period taken as given."""
    env = {**_dirs(tmp_path), variable: value}
    database = "postgresql://nobody@127.0.0.1:9/none"  # never reached: the check comes first
    server = ("server", "run", "--port", str(free_port()))
    for args in (server, ("worker", "run", "--database", database)):
        done = _cli(env, *args, timeout=30)
        assert done.returncode == 2, done.stderr
        assert f"error: {variable}={value!r} is not a number of seconds {says}" in done.stderr
        assert "unset it" in done.stderr and "Traceback" not in done.stderr
        assert "device:" not in done.stderr  # checked before the device is chosen
    assert not (tmp_path / "data").exists()  # nothing was created
