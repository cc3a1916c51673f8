"""state.py: the saved-jobs file survives concurrency, corruption and old schemas."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from whispercli.errors import NotFoundError, UsageError
from whispercli.state import SCHEMA_VERSION, JobStore, SavedJob, migrate


def _job(job_id: str, **kw: object) -> SavedJob:
    return SavedJob(id=job_id, endpoint="http://127.0.0.1:1", **kw)  # type: ignore[arg-type]


def test_add_resolve_prefix_last(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.json")
    store.add(_job("aaa111", created="2026-01-01T00:00:00Z"))
    store.add(_job("aab222", created="2026-01-02T00:00:00Z"))
    assert store.resolve("last").id == "aab222"
    assert store.resolve("aaa").id == "aaa111"
    assert store.resolve("aab222").id == "aab222"
    with pytest.raises(UsageError, match=r"aaa111.*aab222"):
        store.resolve("aa")
    with pytest.raises(NotFoundError):
        store.resolve("zzz")
    data = json.loads((tmp_path / "jobs.json").read_text())
    assert data["version"] == SCHEMA_VERSION and len(data["jobs"]) == 2
    assert ((tmp_path / "jobs.json").stat().st_mode & 0o777) == 0o600


def test_update_remove_and_reuse_lookup(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.json")
    store.add(_job("j1", sha256="h", model="tiny", tier="cpuflex", options={"language": "en"}))
    store.update("j1", status="success")
    assert store.find_reusable("h", "tiny", {"language": "en"}, "http://127.0.0.1:1", "cpuflex")
    assert not store.find_reusable("h", "tiny", {}, "http://127.0.0.1:1", "cpuflex")
    store.update("j1", status="failed")
    assert not store.find_reusable("h", "tiny", {"language": "en"}, "http://127.0.0.1:1", "cpuflex")
    assert store.remove({"j1"}) == 1 and store.all() == []


def test_corrupt_file_is_moved_aside_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "jobs.json"
    path.write_text("{not json")
    store = JobStore(path)
    assert store.all() == []
    assert "warning" in capsys.readouterr().err
    [aside] = tmp_path.glob("jobs.json.corrupt-*")
    assert aside.read_text() == "{not json"
    store.add(_job("new"))
    assert [j.id for j in store.all()] == ["new"]


def test_migrates_the_unversioned_list_format(tmp_path: Path) -> None:
    old = [{"id": "x1", "url": "http://h/v1/async/jobs/x1?sig=s", "path": "/a.mp3"}]
    assert migrate(old)["version"] == SCHEMA_VERSION
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(old))
    [job] = JobStore(path).all()
    assert job.poll_url.endswith("sig=s") and job.file == "/a.mp3"  # type: ignore[union-attr]


def _add_many(path: str, worker: int) -> None:
    store = JobStore(Path(path))
    for i in range(10):
        store.add(_job(f"w{worker}-{i}"))


def test_concurrent_processes_lose_no_entry(tmp_path: Path) -> None:
    path = tmp_path / "jobs.json"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(str(path), w)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len({j.id for j in JobStore(path).all()}) == 60


def test_a_write_removes_temp_files_left_by_a_killed_writer(tmp_path: Path) -> None:
    leftover = tmp_path / ".jobs.json.abc123.tmp"
    other = tmp_path / ".other.json.abc123.tmp"
    for path in (leftover, other):
        path.write_text("{half a file")
    JobStore(tmp_path / "jobs.json").add(_job("aaa111"))
    assert not leftover.exists()
    assert other.exists()  # not the jobs file's
    assert [j.id for j in JobStore(tmp_path / "jobs.json").all()] == ["aaa111"]


def test_last_is_the_job_last_submitted_or_reused(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.json")
    store.add(_job("old1", created="2026-01-01T00:00:00Z"))
    store.add(_job("new2", created="2026-01-02T00:00:00Z"))
    store.mark_last("old1")  # a command reused the older job
    assert store.resolve("last").id == "old1"
    store.remove({"old1"})
    assert store.resolve("last").id == "new2"  # gone: back to the newest


def test_last_is_listed_first_when_times_tie(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.json")
    for job_id in ("a1", "b2", "c3"):
        store.add(_job(job_id, created="2026-01-01T00:00:00Z"))
    assert store.resolve("last").id == "c3"
    store.mark_last("a1")
    assert [j.id for j in store.newest_first()] == ["a1", "c3", "b2"]
    assert store.resolve("last").id == "a1"


def test_version_1_file_migrates_to_the_current_schema(tmp_path: Path) -> None:
    v1 = {
        "version": 1,
        "jobs": [
            {"id": "x1", "endpoint": "http://h:1", "created": "2026-01-02T00:00:00Z"},
            {"id": "x2", "endpoint": "http://h:1", "created": "2026-01-02T00:00:00Z"},
            {"id": "x0", "endpoint": "http://h:1", "created": "2026-01-01T00:00:00Z"},
        ],
    }
    migrated = migrate(json.loads(json.dumps(v1)))
    assert migrated["version"] == SCHEMA_VERSION == 3
    assert migrated["last"] == "x2"  # the newest, the later one on a tie (as listed)
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(v1))
    store = JobStore(path)
    assert store.resolve("last").id == "x2"
    assert [j.profile for j in store.all()] == [None, None, None]
    store.update("x0", status="success")
    written = json.loads(path.read_text())
    assert written["version"] == 3 and written["last"] == "x2"
    assert [e["id"] for e in written["jobs"]] == ["x1", "x2", "x0"]


def test_a_submitted_upload_url_is_saved_without_its_signature(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs.json")
    store.add(_job("u1", file="http://h:1/v1/uploads/abc?expires=9&sig=deadbeef"))
    assert "sig=" not in (tmp_path / "jobs.json").read_text()
    assert store.resolve("u1").file == "http://h:1/v1/uploads/abc"


def test_version_2_file_migrates_to_3_with_every_job_on_tiyaro(tmp_path: Path) -> None:
    v2 = {
        "version": 2,
        "last": "t2",
        "jobs": [
            {"id": "t1", "endpoint": "http://h:1", "poll_url": "http://h:1/p1", "profile": "a"},
            {"id": "t2", "endpoint": "https://api.tiyaro.ai", "profile": "tiyaro"},
        ],
    }
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(v2))
    store = JobStore(path)
    assert [(j.id, j.backend) for j in store.all()] == [("t1", "tiyaro"), ("t2", "tiyaro")]
    assert store.resolve("last").id == "t2" and store.resolve("t1").poll_url == "http://h:1/p1"
    store.add(SavedJob(id="e3", endpoint="http://eden:1", backend="edenai"))
    written = json.loads(path.read_text())
    assert written["version"] == 3 and written["last"] == "e3"
    assert [j["backend"] for j in written["jobs"]] == ["tiyaro", "tiyaro", "edenai"]
    assert JobStore(path).resolve("e3").backend == "edenai"  # read back as written
