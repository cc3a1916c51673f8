"""A throwaway PostgreSQL 15 cluster for tests: ``postgres`` (session fixture), and
``postgres_outage`` (the same cluster for a test that stops it: started again afterwards).

initdb and pg_ctl refuse to run as root, so as root the cluster runs as the ``postgres`` user
in a folder it owns (in /dev/shm, else /var/tmp: pytest's basetemp is private to root); as a
normal user it runs as that user. fsync and full-page writes are off: that only matters if the
machine itself crashes (every commit still writes its WAL), so tests that stop or kill
PostgreSQL use the session's cluster too (``durable=True`` exists for the fixture's own test).
The cluster is stopped and its folder removed at the end of the session.

``cluster.new_database(setup)`` returns the DSN of a fresh database cloned from a template
(about 25 ms) that ``setup`` (e.g. a schema migration) prepared once.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import pytest
from support.net import free_port
from support.sandbox import Sandbox
from support.servers import Workers

TEMPLATE = "whispercli_template"


def pg_bindir() -> Path:
    """The server binaries: ``pg_config --bindir``, else Debian's PostgreSQL 15 folder."""
    candidates = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        candidates.append(Path(out.stdout.strip()))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    pytest.fail("PostgreSQL 15 server binaries not found: `apt-get install postgresql`")


def _cluster_parent() -> str:
    """/dev/shm (memory: a session's hundred cloned databases are created, written and
    removed in no time) where there is one, else /var/tmp."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else "/var/tmp"


class PostgresCluster:
    def __init__(self, *, durable: bool = False) -> None:
        self.bindir = pg_bindir()
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self.user = "postgres"
        self.root = Path(tempfile.mkdtemp(prefix="whispercli-pg-", dir=_cluster_parent()))
        if self.as_root:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.data = self.root / "data"
        self.durable = durable
        self._names = count()
        self._templates: dict[Callable[[str], None] | None, str] = {}

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    def _check(self, result: subprocess.CompletedProcess[str], what: str) -> None:
        if result.returncode != 0:
            log = self.root / "log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} failed:\n{result.stdout}\n{result.stderr}\n{tail}")

    def start(self) -> None:
        if not self.data.exists():
            result = self._run(
                "initdb", "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
                "--no-sync",
            )  # fmt: skip
            self._check(result, "initdb")
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        if not self.durable:
            # A commit still writes its WAL (synchronous_commit stays on), so a PostgreSQL
            # crash (``stop("immediate")``) loses nothing; only a machine crash could.
            options += " -c fsync=off -c full_page_writes=off"
        result = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "30",
            "-o", options, "start",
        )  # fmt: skip
        self._check(result, "pg_ctl start")

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def _sql(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def new_database(self, template_setup: Callable[[str], None] | None = None) -> str:
        """A fresh database, cloned from a template that ``template_setup`` (e.g. a schema
        migration) prepared once."""
        template = self._templates.get(template_setup)
        if template is None:
            template = f"{TEMPLATE}_{len(self._templates)}"
            self._sql(f"CREATE DATABASE {template}")
            if template_setup is not None:
                template_setup(self.dsn(template))
            self._templates[template_setup] = template
        name = f"test_{os.getpid()}_{next(self._names)}"
        self._sql(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.dsn(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the whole session (stopped and removed at the end)."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def postgres_outage(postgres: PostgresCluster) -> Iterator[PostgresCluster]:
    """The session's cluster for a test that stops it (``stop("fast")``, then ``start()``):
    running again after the test whatever happened, so later tests find it up."""
    yield postgres
    if not postgres.running():
        postgres.start()


@pytest.fixture
def workers(postgres: PostgresCluster, sandbox: Sandbox) -> Iterator[Workers]:
    """Workers on a fresh database (our schema and Procrastinate's migrated), each with its own
    data dir and log; all stopped at the end of the test."""
    from whispercli.server.scale.queue import migrate

    pool = Workers(sandbox, postgres.new_database(migrate))
    yield pool
    pool.stop_all()
