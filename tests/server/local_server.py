"""A real ``whispercli server run`` subprocess for tests: start it on a free port with its own
directories, wait for it to answer, stop it. The fixtures in tests/conftest.py wrap this; tests
that need more control import it directly (``from local_server import start_server``)."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
SAMPLE_MP3 = REPO / "samples" / "sample.mp3"
SAMPLE_TXT = REPO / "samples" / "sample.txt"
START_TIMEOUT = 60.0
FAKE_ENGINE_ENV = "WHISPERCLI_FAKE_ENGINE_SECONDS"
"""A server started with this (``extra_env``) runs the fake engine: N seconds a job."""


@contextlib.contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler], port: int = 0) -> Iterator[str]:
    """A threading HTTP server answering with ``handler`` on loopback ``port`` (0: a free
    one), in a thread; yields its base URL and stops it on exit."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerHandle:
    url: str
    port: int
    api_key: str
    config_dir: Path
    state_dir: Path
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def stop(self, *, kill: bool = False, timeout: float = 15.0) -> int | None:
        """SIGKILL (``kill=True``) or SIGTERM then wait, killing if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_server(
    root: Path,
    *,
    port: int | None = None,
    args: tuple[str, ...] | list[str] = (),
    dirs_from: ServerHandle | None = None,
    extra_env: dict[str, str] | None = None,
) -> ServerHandle:
    """Start ``python -m whispercli server run`` and wait until ``/v1/health`` answers 200.

    ``dirs_from`` reuses another (stopped) server's config, state and data dirs, as a restart
    after a crash would. Extra flags (``--max-upload-mb 1``...) go in ``args``; ``extra_env``
    (e.g. ``WHISPERCLI_FAKE_ENGINE_SECONDS``) goes to the server process only.
    """
    port = port or find_free_port()
    root.mkdir(parents=True, exist_ok=True)
    if dirs_from is not None:
        config, state, data = dirs_from.config_dir, dirs_from.state_dir, dirs_from.data_dir
    else:
        config, state, data = root / "config", root / "state", root / "data"
    url = f"http://127.0.0.1:{port}"
    dirs = {
        "WHISPERCLI_CONFIG_DIR": str(config),
        "WHISPERCLI_STATE_DIR": str(state),
        "WHISPERCLI_DATA_DIR": str(data),
        "WHISPERCLI_URL": url,
    }
    log_path = root / f"server-{port}-{time.monotonic_ns()}.log"
    argv = ["--port", str(port), "--log-level", "info", *args]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "whispercli", "server", "run", *argv],
            env={**os.environ, **dirs, "HF_HUB_OFFLINE": "1", **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    deadline = time.monotonic() + START_TIMEOUT
    key_file = config / "api-key"
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"server did not come up:\n{log_path.read_text()}")
        if key_file.exists():
            key = key_file.read_text().strip()
            with contextlib.suppress(requests.RequestException):
                resp = requests.get(
                    f"{url}/v1/health", headers={"Authorization": f"Bearer {key}"}, timeout=2
                )
                if resp.status_code == 200:
                    break
        time.sleep(0.1)
    return ServerHandle(url, port, key, config, state, data, dirs, proc, log_path, argv)


class ServerFactory:
    """Starts servers for one test and stops all of them afterwards."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ServerHandle] = []

    def start(
        self,
        *args: str,
        dirs_from: ServerHandle | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ServerHandle:
        handle = start_server(self.root, args=list(args), dirs_from=dirs_from, extra_env=extra_env)
        self.started.append(handle)
        return handle

    def stop_all(self) -> None:
        for handle in self.started:
            handle.stop()
