"""The saved-jobs file: an older schema migrates, a crash mid-write loses nothing, and
``jobs prune`` removes exactly what it reports."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.figures import record
from support.sandbox import Sandbox, run_cli

import whispercli.fsutil as fsutil
import whispercli.state as state

pytestmark = pytest.mark.reliability


def _iso(delta: timedelta) -> str:
    return (datetime.now(UTC) - delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ids(out: str) -> list[str]:
    body = json.loads(out)
    items = body["jobs"] if isinstance(body, dict) else body
    return [item["id"] for item in items]


def test_version_0_file_migrates_without_loss(sandbox: Sandbox) -> None:
    old = [
        {
            "id": f"{i:032x}",
            "url": f"http://127.0.0.1:9/v1/async/jobs/{i:032x}?expires=1&sig=00",
            "path": f"/music/take {i}.mp3",
            "status": "success",
            "created": _iso(timedelta(days=i)),
        }
        for i in range(1, 4)
    ]
    sandbox.jobs_file.write_text(json.dumps(old))
    listed = run_cli(
        sandbox, "jobs", "list", "--json", env=sandbox.env(WHISPERCLI_URL="http://127.0.0.1:9")
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(_ids(listed.stdout)) == sorted(e["id"] for e in old)
    assert "warning" not in listed.stderr.lower(), "a valid old file was treated as corrupt"

    removed = run_cli(
        sandbox, "jobs", "rm", old[0]["id"], env=sandbox.env(WHISPERCLI_URL="http://127.0.0.1:9")
    )
    assert removed.returncode == 0, removed.stderr
    new = json.loads(sandbox.jobs_file.read_text())
    record("state: v0 -> v1 migration", entries_before=len(old), entries_after=len(new["jobs"]))
    assert new["version"] == state.SCHEMA_VERSION
    by_id = {e["id"]: e for e in new["jobs"]}
    assert set(by_id) == {e["id"] for e in old[1:]}
    for entry in old[1:]:
        assert by_id[entry["id"]]["poll_url"] == entry["url"]
        assert by_id[entry["id"]]["file"] == entry["path"]
        assert by_id[entry["id"]]["created"] == entry["created"]
    assert not list(sandbox.state_dir.glob("jobs.json.corrupt-*"))


def test_failed_rename_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "jobs.json"
    store = state.JobStore(path)
    for i in range(3):
        store.add(state.SavedJob(id=f"keep-{i}", endpoint="http://127.0.0.1:9"))
    before = path.read_bytes()

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(5, "simulated crash between write and rename")

    monkeypatch.setattr(fsutil.os, "replace", broken_replace)
    with pytest.raises(OSError):
        store.add(state.SavedJob(id="never-written", endpoint="http://127.0.0.1:9"))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobs.json", "jobs.json.lock"], (
        "a temporary file was left behind"
    )
    assert [j.id for j in state.JobStore(path).all()] == ["keep-0", "keep-1", "keep-2"]


WRITER = """
import sys
import whispercli.state as state
store = state.JobStore()
start = int(sys.argv[1])
for i in range(start, start + 400):
    store.add(state.SavedJob(id=f"job-{i:05d}", endpoint="http://127.0.0.1:9", file="x" * 200))
    print(f"job-{i:05d}", flush=True)
"""


def test_sigkill_mid_write_loses_no_acknowledged_entry(sandbox: Sandbox) -> None:
    """Kill writers at random moments: every entry a writer reported saved must survive."""
    rng = random.Random(5)
    acknowledged: list[str] = []
    kills = 0
    for round_ in range(6):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(round_ * 1000)],
            env=sandbox.env(),
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.4, 1.0))
        os.kill(proc.pid, signal.SIGKILL)
        kills += 1
        out, _ = proc.communicate(timeout=10)
        acknowledged += out.split()
        data = json.loads(sandbox.jobs_file.read_text())  # must always parse
        saved = {e["id"] for e in data["jobs"]}
        missing = [a for a in acknowledged if a not in saved]
        assert not missing, f"round {round_}: lost {len(missing)} acknowledged entries"
    leftovers = [p.name for p in sandbox.state_dir.iterdir() if p.name.endswith(".tmp")]
    record(
        "state: SIGKILL during writes",
        kills=kills,
        acknowledged_entries=len(acknowledged),
        lost=0,
        leftover_temp_files=len(leftovers),
    )
    assert not list(sandbox.state_dir.glob("jobs.json.corrupt-*"))
    assert len(acknowledged) > 20, "the writers were killed before they wrote anything"


def test_prune_removes_only_what_it_says(sandbox: Sandbox) -> None:
    entries = {
        "old-success": ("success", timedelta(hours=3)),
        "old-failed": ("failed", timedelta(hours=5)),
        "old-cancelled": ("cancelled", timedelta(days=9)),
        "old-processing": ("processing", timedelta(days=2)),
        "old-accepted": ("accepted", timedelta(hours=2)),
        "new-success": ("success", timedelta(minutes=5)),
        "new-pending": ("pending", timedelta(minutes=1)),
    }
    jobs = [
        {
            "id": f"{name}-{'0' * 8}",
            "endpoint": "http://127.0.0.1:9",
            "status": s,
            "created": _iso(age),
        }
        for name, (s, age) in entries.items()
    ]
    sandbox.jobs_file.write_text(json.dumps({"version": 1, "jobs": jobs}))
    env = sandbox.env(WHISPERCLI_URL="http://127.0.0.1:9")  # nothing listens: prune is local

    first = run_cli(sandbox, "jobs", "prune", "--older-than", "1h", "--json", env=env)
    assert first.returncode == 0, first.stderr
    left = {e["id"].rsplit("-", 1)[0] for e in json.loads(sandbox.jobs_file.read_text())["jobs"]}
    # the unfinished ones are asked about first; nothing answers, so they are kept
    assert json.loads(first.stdout) == {"removed": 3, "gone": 0, "unanswered": 2}
    assert left == {"old-processing", "old-accepted", "new-success", "new-pending"}

    second = run_cli(sandbox, "jobs", "prune", "--json", env=env)
    assert second.returncode == 0, second.stderr
    left2 = {e["id"].rsplit("-", 1)[0] for e in json.loads(sandbox.jobs_file.read_text())["jobs"]}
    assert json.loads(second.stdout) == {"removed": 1, "gone": 0, "unanswered": 3}
    assert left2 == {"old-processing", "old-accepted", "new-pending"}
    record("state: jobs prune", entries=len(jobs), removed_1h=3, removed_all=1, kept=len(left2))


def _read_key(barrier: Any, path: str, out: Any) -> None:
    barrier.wait()
    out.put(fsutil.read_or_create_secret(Path(path)))


def test_key_file_created_by_racing_processes(tmp_path: Path) -> None:
    """Several processes reading (or creating) the API key at the same instant: the CLIs and
    the server auto-started by one of them do exactly this. All must get the same, non-empty
    key; an empty read is a 401 for that CLI."""
    ctx = multiprocessing.get_context("fork")
    rounds, racers, empty, disagreed = 40, 6, 0, 0
    for r in range(rounds):
        path = tmp_path / f"key-{r}"
        barrier, out = ctx.Barrier(racers), ctx.Queue()
        procs = [
            ctx.Process(target=_read_key, args=(barrier, str(path), out)) for _ in range(racers)
        ]
        for p in procs:
            p.start()
        keys = [out.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(10)
        empty += keys.count("")
        disagreed += len(set(keys)) > 1
    record("state: API key created by racing processes", rounds=rounds, processes=racers,
           empty_keys_read=empty, rounds_with_disagreeing_keys=disagreed)  # fmt: skip
    assert empty == 0 and disagreed == 0, (
        f"{empty} empty keys read, {disagreed}/{rounds} rounds disagreed"
    )
