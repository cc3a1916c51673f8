"""Helpers shared by the client-side bench sections (e2e, notice, upload, startup, server).

* real servers on free ports with temporary config/state/data dirs (tests/support/servers.py,
  the same launcher the end-to-end tests use), stopped on exit;
* the ``whispercli`` command (the console script next to this interpreter, not the pyenv shim,
  whose bash wrapper would add its own start-up time);
* a counting TCP proxy that tallies the HTTP requests a client sends;
* a child's wall time and peak RSS, Markdown tables, statistics, --json output.

Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
DATA_DIR = BENCH_DIR / "data"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.net import free_port  # noqa: E402
from support.sandbox import Sandbox  # noqa: E402
from support.servers import Server  # noqa: E402

__all__ = ["Server", "free_port"]

DIR_VARS = ("WHISPERCLI_CONFIG_DIR", "WHISPERCLI_STATE_DIR", "WHISPERCLI_DATA_DIR")
CLIENT_VARS = ("WHISPERCLI_URL", "WHISPERCLI_API_KEY", "WHISPERCLI_PROFILE", "WHISPERCLI_DEBUG")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def whispercli() -> list[str]:
    """argv prefix that runs the CLI the way an installed user runs it."""
    script = Path(sys.executable).parent / "whispercli"
    return [str(script)] if script.exists() else [sys.executable, "-m", "whispercli"]


def _entry(name: str) -> dict[str, Any]:
    manifest = json.loads((DATA_DIR / "manifest.json").read_text(encoding="utf-8"))
    for entry in manifest["clips"] + manifest.get("sequences", []):
        if entry["name"] == name:
            return dict(entry)
    raise SystemExit(f"no clip {name!r} in {DATA_DIR / 'manifest.json'}; run bench/make_speech.py")


def clip(name: str) -> Path:
    """A clip of the bench speech set by manifest name (``long`` is the 157 s file, ``set``
    the whole set in a row)."""
    return DATA_DIR / _entry(name)["audio"]


def clip_seconds(name: str) -> float:
    return float(_entry(name)["seconds"])


def client_env(server: Server | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without whispercli settings, plus a server's dirs and URL."""
    env = {k: v for k, v in os.environ.items() if k not in (*DIR_VARS, *CLIENT_VARS)}
    env["HF_HUB_OFFLINE"] = "1"
    env.pop("WHISPERCLI_LOCAL_PORT", None)
    if server is not None:
        env.update(server.env)
    env.update(extra)
    return env


@contextmanager
def running_server(root: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """A real server for the duration of the block (SIGTERM, then SIGKILL if it lingers)."""
    handle = Server(Sandbox(root), *args, env=env).start()
    try:
        yield handle
    finally:
        handle.stop()


def wait_for_model(server: Server, timeout: float = 60.0) -> None:
    """Block until the server's worker has loaded the model (its log says so)."""
    deadline = time.monotonic() + timeout
    while "loaded in" not in server.log():
        if time.monotonic() > deadline:
            raise RuntimeError("the server's worker did not load the model")
        time.sleep(0.05)


@dataclass
class ChildRun:
    wall: float
    returncode: int
    max_rss_kib: int
    stdout: str
    stderr: str
    cpu: float = 0.0
    """User + system CPU seconds of the child (wait4's rusage)."""


def run_child(argv: Sequence[str], env: dict[str, str], cwd: Path = ROOT) -> ChildRun:
    """Run a command to the end: wall time, exit code, and its peak RSS (wait4's rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    readers = [
        threading.Thread(target=lambda: out_chunks.append(proc.stdout.read())),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err_chunks.append(proc.stderr.read())),  # type: ignore[union-attr]
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    for reader in readers:
        reader.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(
        wall,
        proc.returncode,
        int(usage.ru_maxrss),
        b"".join(out_chunks).decode("utf-8", "replace"),
        b"".join(err_chunks).decode("utf-8", "replace"),
        usage.ru_utime + usage.ru_stime,
    )


def check(run: ChildRun, what: str) -> ChildRun:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed (exit {run.returncode}):\n{run.stderr[-2000:]}")
    return run


_REQUEST_LINE = re.compile(rb"(?:GET|POST|PUT|DELETE|HEAD|PATCH|OPTIONS) /\S* HTTP/1\.[01]\r\n")


class CountingProxy:
    """A TCP forwarder on 127.0.0.1 that counts the HTTP requests going through it.

    It only reads request lines in the client-to-server stream (a small tail of each chunk is
    kept so a line split across two reads still counts once); bytes pass through unchanged.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.requests = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = int(self._listener.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        tail = b""
        try:
            while data := src.recv(1 << 16):
                if count:
                    window = tail + data
                    hits = sum(1 for m in _REQUEST_LINE.finditer(window) if m.end() > len(tail))
                    if hits:
                        with self._lock:
                            self.requests += hits
                    tail = window[-64:]
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            sock.close()


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (cells are formatted by the caller)."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, payload: Any) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"
