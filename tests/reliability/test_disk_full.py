"""The data dir on a 2 MiB tmpfs: an upload bigger than the free space, then a full disk.

Expected: a clear 507 (or another 4xx) that says the disk is full, a one-line CLI error, the
database intact, no partial file left behind, and the next job completing once space returns.
The mount needs root (or CAP_SYS_ADMIN); without it the test fails and says so -- it is not
skipped, so a CI runner that cannot mount is noticed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import requests
from support.figures import record
from support.procs import reap
from support.samples import SAMPLE_MP3, assert_sample
from support.sandbox import Sandbox, run_cli
from support.servers import Server

pytestmark = pytest.mark.reliability

SIZE = "2m"


@pytest.fixture
def small_disk(sandbox: Sandbox) -> Iterator[Path]:
    mount = sandbox.root / "small-disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.fail(
            f"cannot mount a {SIZE} tmpfs at {mount} ({done.stderr.strip()}): the disk-full test "
            "needs root or CAP_SYS_ADMIN in CI (run the container with --cap-add SYS_ADMIN)"
        )
    try:
        yield mount
    finally:
        reap(sandbox.root)  # a server's children may still hold files on it
        for _ in range(40):
            subprocess.run(["umount", str(mount)], check=False, capture_output=True)
            if not os.path.ismount(mount):
                break
            time.sleep(0.25)
        if os.path.ismount(mount):  # something still holds it: detach, and say so
            subprocess.run(["umount", "-l", str(mount)], check=False)
            pytest.fail(f"{mount} was still busy at teardown (lazily unmounted)")


@pytest.fixture
def disk_server(sandbox: Sandbox, small_disk: Path) -> Iterator[Server]:
    server = Server(sandbox, data_dir=small_disk / "data").start()
    yield server
    server.stop()


def _integrity(data_dir: Path) -> list[str]:
    results = []
    for db in [*data_dir.rglob("*.db"), *data_dir.rglob("*.sqlite*")]:
        if db.suffix in (".db", ".sqlite", ".sqlite3"):
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                results.append(conn.execute("PRAGMA integrity_check").fetchone()[0])
    return results


def _partials(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]


def _upload_raw(sandbox: Sandbox, path: Path) -> requests.Response:
    r = requests.post(
        sandbox.url + "/v1/input/upload-url?extension=mp3", headers=sandbox.auth(), timeout=10
    )
    r.raise_for_status()
    with path.open("rb") as fh:
        return requests.put(r.json()["uploadUrl"]["PUT"], data=fh, timeout=30)


def _clear_error(status: int, body: str) -> None:
    assert status == 507 or 400 <= status < 500, f"disk full answered {status}: {body}"
    lowered = body.lower()
    assert any(w in lowered for w in ("space", "full", "storage")), body


def test_upload_bigger_than_free_space(
    disk_server: Server, sandbox: Sandbox, small_disk: Path, tmp_path: Path
) -> None:
    data_dir = disk_server.data_dir
    free_before = shutil.disk_usage(small_disk).free
    big = tmp_path / "big.mp3"
    big.write_bytes(SAMPLE_MP3.read_bytes() + os.urandom(free_before + 512 * 1024))

    raw = _upload_raw(sandbox, big)
    cli = run_cli(sandbox, "transcribe", str(big), timeout=120)
    after_fail = shutil.disk_usage(small_disk).free

    # Now fill the disk to the brim with something else, and try a small job.
    filler = small_disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    full = run_cli(sandbox, "transcribe", str(SAMPLE_MP3), timeout=120)
    filler.unlink()
    recovered = run_cli(sandbox, "transcribe", str(SAMPLE_MP3), timeout=120)

    record(
        "fault: data dir full (2 MiB tmpfs)",
        upload_status=raw.status_code,
        cli_exit_big=cli.returncode,
        cli_exit_full=full.returncode,
        submitted=3,
        finished=int(recovered.returncode == 0),
        expected_to_finish=1,
        free_before=free_before,
        free_after_failed_upload=after_fail,
        cli_error_big=cli.stderr.strip().splitlines()[:1],
        cli_error_full=full.stderr.strip().splitlines()[:1],
    )
    _clear_error(raw.status_code, raw.text)
    for run in (cli, full):
        assert run.returncode != 0, run.stdout
        assert "Traceback" not in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) <= 2, run.stderr
        assert any(w in run.stderr.lower() for w in ("space", "full", "storage")), run.stderr
    assert _partials(data_dir) == [], "a failed upload left a partial file behind"
    assert after_fail >= free_before - 64 * 1024, "the failed upload's bytes were not released"
    assert _integrity(data_dir) and set(_integrity(data_dir)) == {"ok"}
    assert disk_server.proc is not None and disk_server.proc.poll() is None, "the server died"
    assert recovered.returncode == 0, recovered.stderr
    assert_sample(recovered.stdout)
