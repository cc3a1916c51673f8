"""Shared fixtures: isolated whispercli directories and real local servers on free ports.

* ``isolated_env`` -- points WHISPERCLI_CONFIG_DIR / STATE_DIR / DATA_DIR of *this* process at
  fresh temporary directories (and clears WHISPERCLI_URL / WHISPERCLI_API_KEY /
  WHISPERCLI_PROFILE), so a test never reads or writes the user's real files.
* ``free_port`` -- a TCP port on 127.0.0.1 that nothing listens on right now.
* ``server`` -- one real ``python -m whispercli server run`` subprocess per test module, with
  its own temporary directories; yields a :class:`ServerHandle`.
* ``server_factory`` -- start extra servers (own flags, reuse a data dir after a kill, the
  fake engine with ``extra_env``); every server it started is stopped at the end of the test.
* ``postgres`` (a session's throwaway cluster) and ``workers`` (``worker run`` processes on a
  fresh migrated database of it), from ``pg_cluster``.
* ``no_connect`` / ``no_dns`` -- tripwires: the test fails if this process connects a socket
  to anything but loopback, or asks for any DNS lookup.

A :class:`ServerHandle` has ``url``, ``api_key``, ``headers`` (the Bearer header),
``data_dir``, ``config_dir``, ``state_dir``, ``env`` (the environment variables the server got:
the three dirs and ``WHISPERCLI_URL``; merge it into a CLI subprocess's environment to talk to
this server with its key file), ``proc`` (the Popen), ``log_path`` and ``stop(kill=False)``.

Importable from any test directory (tests/server is put on ``sys.path`` here): ``local_server``
(``start_server``, ``ServerHandle``, ``SAMPLE_MP3``/``SAMPLE_TXT``), ``server_helpers`` (the
four protocol steps with requests, ``make_long_clip``) and, from bench/ (on pytest's
``pythonpath``), ``wer``: the one word-error-rate scorer.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Shared test modules live in tests/server under names unique in the suite; make them importable
# from every test directory (``from local_server import ServerHandle``).
sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))

from local_server import ServerFactory, ServerHandle, find_free_port, start_server
from pg_cluster import postgres, workers  # noqa: F401  (fixtures, for every directory)

_DIR_VARS = ("WHISPERCLI_CONFIG_DIR", "WHISPERCLI_STATE_DIR", "WHISPERCLI_DATA_DIR")


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Temporary config/state/data dirs for this process; returns the variables set."""
    env = {}
    for var, name in zip(_DIR_VARS, ("config", "state", "data"), strict=True):
        folder = tmp_path / name
        folder.mkdir()
        monkeypatch.setenv(var, str(folder))
        env[var] = str(folder)
    for var in ("WHISPERCLI_URL", "WHISPERCLI_API_KEY", "WHISPERCLI_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return env


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that is free at the time of the call."""
    return find_free_port()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start extra servers (``factory.start("--max-queue", "1")``); all stopped at teardown."""
    factory = ServerFactory(tmp_path / "servers")
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """One real server per test module on a free port, with temporary directories."""
    handle = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield handle
    finally:
        handle.stop()


_real_connect = socket.socket.connect


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if any socket connects to a non-loopback address; returns the attempts."""
    attempts: list[object] = []

    def connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        host = address[0] if isinstance(address, tuple) else ""
        if host not in ("127.0.0.1", "::1"):
            pytest.fail(f"a socket tried to connect to {address!r}")
        _real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if this process resolves a name (``socket.getaddrinfo``: every lookup
    goes through it); returns the lookups asked for."""
    asked: list[object] = []

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        asked.append(host)
        pytest.fail(f"a DNS lookup of {host!r} was asked for")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked
