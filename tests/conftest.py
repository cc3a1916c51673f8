"""Fixtures for every test directory, and where the shared test helpers live.

Session fixtures are per process: with pytest-xdist (README's ``-n 3``) each worker starts its
own servers and PostgreSQL cluster, and a test file runs on one worker (``--dist loadfile``).

Fixtures (no import needed):

* ``isolated_env`` -- WHISPERCLI_CONFIG_DIR / STATE_DIR / DATA_DIR of *this* process pointed at
  fresh temporary dirs (WHISPERCLI_URL / API_KEY / PROFILE cleared).
* ``free_port`` -- a loopback TCP port nothing listens on right now.
* ``sandbox`` -- a :class:`support.sandbox.Sandbox` (dirs, TMPDIR, port, env) for this test;
  every process started in it is killed at teardown.
* ``server`` -- one real ``whispercli server run`` (the real model) for the session, shared by
  every test that neither kills nor reconfigures it (each brings its own client dirs: ``cli``);
  a module whose tests never look at transcripts overrides it with ``fake_server``, and a test
  there that does asks for ``real_server`` (the same real one).
* ``fake_server`` -- the same with the fake engine (0.1 s a job). A module that wants another
  server (flags, a longer fake job) writes a module fixture with
  ``yield from serve_module(tmp_path_factory, *flags, fake_engine=seconds)``; a test that
  kills or restarts its server starts its own (``server_factory``).
* ``server_factory`` -- more servers for one test (own flags, ``dirs_from`` a killed one).
* ``busy_server`` -- the same with minute-long fake-engine jobs, for tests that need a job still
  running (a timeout, a Ctrl-C, a cancel); mark such a test ``busy_server`` and its ``cli``
  talks to it.
* ``cli`` -- whispercli (:class:`support.cli.Cli`) with its own fresh dirs, pointed at
  ``server`` (or ``busy_server``).
* ``postgres`` -- the session's PostgreSQL cluster (``new_database(migrate)`` clones a fresh
  database); ``postgres_outage`` for a test that stops it; ``workers`` -- ``worker run``
  processes (``support.servers.Workers``) on a fresh migrated database of it.
* ``no_connect`` / ``no_dns`` -- tripwires: the test fails if this process connects a socket
  to anything but loopback, or asks for any DNS lookup.
* ``long_clip`` (about 3 min of speech), ``minute_clip`` (about 1 min): made once a run (the
  xdist workers share them).

Helpers to import (``tests/`` is on pytest's pythonpath, as is ``bench/`` for ``wer``):

* ``support.servers`` -- ``Server`` and ``Worker``: the one server and worker launcher;
  ``ServerFactory``; ``FAST_FLEET`` (short PostgreSQL-mode timings); ``BOTH_BACKENDS``.
* ``support.sandbox`` -- ``Sandbox``, ``run_cli`` / ``start_cli`` (the CLI as a subprocess).
* ``support.cli`` -- ``Cli`` (the CLI in-process or as a subprocess), ``assert_one_error_line``.
* ``support.protocol`` -- the Tiyaro protocol's steps with requests (``upload``, ``submit``,
  ``poll``, ``wait_done``...), ``SEED_INPUT``, ``webhook_secret``.
* ``support.net`` -- ``free_port``, ``serve_http`` (the one stub HTTP server: give it a
  handler class), ``receiver`` (a webhook receiver).
* ``support.audio`` -- ``make_tone``, ``make_long_clip`` / ``LONG_TEXT``, ``short_word_clip``,
  ``long_speech``, ``silence_mp3``, ``hostile_files``.
* ``support.samples`` -- ``SAMPLE_MP3``, ``SAMPLE_TXT``, ``assert_sample`` / ``is_sample``:
  a transcript is judged within a WER bound, never by one CPU's exact words.
* ``support.procs`` -- ``children_of``, ``engine_child``, ``alive``, ``gone``, ``reap``.
* ``support.pg_cluster`` -- ``PostgresCluster``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import support.figures as figures
from support.audio import shared_long_clip
from support.cli import Cli
from support.net import free_port as find_free_port
from support.pg_cluster import postgres, postgres_outage, workers  # noqa: F401  (fixtures)
from support.procs import reap
from support.sandbox import Sandbox
from support.servers import Server, ServerFactory, serve_module

_DIR_VARS = ("WHISPERCLI_CONFIG_DIR", "WHISPERCLI_STATE_DIR", "WHISPERCLI_DATA_DIR")


# -- the reliability figures (support/figures.py): printed at the end, gathered from xdist
# workers by the controller ---------------------------------------------------------------------
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the figures to the controller
        workeroutput["whispercli_figures"] = figures.export()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    exported = getattr(node, "workeroutput", {}).get("whispercli_figures")
    if exported:
        figures.merge(exported)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if figures.any_figures():
        terminalreporter.write_sep("-", "whispercli reliability figures")
        terminalreporter.write_line(figures.dump())


FAKE_SECONDS = 0.1
BUSY_SECONDS = 60.0


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
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """Temporary dirs and env; every process tagged with them is killed in teardown."""
    box = Sandbox(tmp_path / "box")
    yield box
    reap(box.root)


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers for this test (``factory.start("--max-queue", "1")``); all stopped."""
    factory = ServerFactory(tmp_path / "servers")
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real server (the real model) for every test that neither kills nor reconfigures
    it, on a free port, with temporary dirs; each test brings its own client dirs."""
    yield from serve_module(tmp_path_factory)


@pytest.fixture(scope="session")
def server(real_server: Server) -> Server:
    """``real_server``, unless the module says otherwise (``fake_server``)."""
    return real_server


@pytest.fixture(scope="session")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same whose jobs run on the fake engine (0.1 s, a fixed text)."""
    yield from serve_module(tmp_path_factory, fake_engine=FAKE_SECONDS)


@pytest.fixture(scope="session")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose jobs run for a minute on the fake engine: for tests that need a job
    still running when they time out, press Ctrl-C or cancel it (``busy_server`` marker)."""
    yield from serve_module(tmp_path_factory, fake_engine=BUSY_SECONDS)


@pytest.fixture
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Cli:
    """whispercli with fresh client-side dirs, talking to ``server`` (to ``busy_server`` for a
    test marked ``busy_server``)."""
    name = "busy_server" if request.node.get_closest_marker("busy_server") else "server"
    return Cli(tmp_path / "cli", request.getfixturevalue(name))


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About three minutes of espeak-ng speech (``LONG_TEXT`` by three voices), made once."""
    return shared_long_clip(tmp_path_factory, 3)


@pytest.fixture(scope="session")
def minute_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About a minute of espeak-ng speech (``LONG_TEXT`` once), made once."""
    return shared_long_clip(tmp_path_factory, 1)


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
