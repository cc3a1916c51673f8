"""The saved-jobs file (``paths.jobs_file()``): what resuming a job needs, across processes.

The file is JSON ``{"version": 3, "last": id, "jobs": [entry, ...]}`` (oldest first; ``last``
is the job the last command submitted or reused, what ``last`` refers to). Each entry keeps what
resuming it needs: its endpoint, the backend (protocol) spoken there, poll URL and the config
profile it was submitted with. Every
change is a read-modify-write under a file lock with an atomic replace, so concurrent CLI
processes never lose an entry and a reader never sees half a file. A file that cannot be read
is moved aside (``jobs.json.corrupt-<timestamp>``) with a warning: the CLI keeps working.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

import whispercli.backends as backends
import whispercli.paths as paths
from whispercli.errors import NotFoundError, UsageError, WhisperCliError
from whispercli.fsutil import atomic_write_text

SCHEMA_VERSION = 3
LOCK_TIMEOUT = 30.0
LAST = "last"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SavedJob:
    id: str
    endpoint: str
    backend: str = backends.DEFAULT
    """The protocol the job was submitted with (``whispercli.backends.BACKENDS``)."""
    poll_url: str | None = None
    profile: str | None = None
    """The config profile the job was submitted with (its key resumes it)."""
    model: str | None = None
    tier: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    size: int | None = None
    sha256: str | None = None
    created: str = field(default_factory=now_iso)
    updated: str = field(default_factory=now_iso)
    status: str = "accepted"
    error: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SavedJob:
        """Validate one entry: ``id`` and ``endpoint`` must be strings; an optional field of
        the wrong type falls back to its default (the entry still resumes)."""
        if not isinstance(data.get("id"), str) or not data["id"]:
            raise ValueError("an entry has no job id")
        if not isinstance(data.get("endpoint"), str):
            raise ValueError(f"entry {data['id']} has no endpoint")
        kept: dict[str, Any] = {}
        for f in fields(cls):
            value = data.get(f.name)
            expected = _FIELD_TYPES.get(f.name, str)
            if f.name in data and isinstance(value, expected) and not isinstance(value, bool):
                kept[f.name] = value
        return cls(**kept)

    def __post_init__(self) -> None:
        # An upload URL given to `submit` is a credential (its query signs it): keep the rest.
        if self.file and self.file.startswith(("http://", "https://")):
            self.file = self.file.split("?", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"options": dict, "size": int}


def migrate(data: Any) -> dict[str, Any]:
    """Bring an older file's content to the current schema, one version at a time.

    Version 0 (before the schema had a version) was a bare list of entries using ``url`` for
    the poll URL and ``path`` for the file. Version 1 had no ``last`` (it was the newest entry
    by creation time, the later one on a tie) and no ``profile`` per entry (unknown: None).
    Version 2 had no ``backend`` per entry: every job then was a Tiyaro-protocol job.
    """
    if isinstance(data, list):
        entries = []
        for item in data:
            if isinstance(item, dict):
                item = dict(item)
                if "url" in item and "poll_url" not in item:
                    item["poll_url"] = item.pop("url")
                if "path" in item and "file" not in item:
                    item["file"] = item.pop("path")
                item.setdefault("endpoint", "")
                entries.append(item)
        data = {"version": 1, "jobs": entries}
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise ValueError("not a jobs file")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION:
        raise ValueError(f"unknown schema version {version!r}")
    if version < 2:
        entries = [e for e in data["jobs"] if isinstance(e, dict)]
        newest = _newest(
            entries, lambda e: e.get("created") if isinstance(e.get("created"), str) else ""
        )
        data = {"version": 2, "last": newest.get("id") if newest else None, "jobs": entries}
    if data["version"] < 3:
        jobs = [dict(e, backend=backends.TIYARO) for e in data["jobs"] if isinstance(e, dict)]
        data = {**data, "version": 3, "jobs": jobs}
    if not isinstance(data.get("last"), str):
        data["last"] = None
    return data


def unusable_dir(folder: Path, reason: str) -> WhisperCliError:
    """The one message for a state dir the jobs file cannot be written to."""
    return WhisperCliError(
        f"cannot use the state directory {folder} (for the jobs file): {reason}",
        hint="set WHISPERCLI_STATE_DIR to a writable folder",
    )


def _newest(items: list[Any], created: Callable[[Any], str]) -> Any:
    """The newest item by creation time; on a tie the later one in the file."""
    best = None
    for item in items:
        if best is None or created(item) >= created(best):
            best = item
    return best


@dataclass
class _Contents:
    jobs: list[SavedJob]
    last: str | None


class JobStore:
    """Saved jobs. Each public method takes the lock for its whole read-modify-write."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.jobs_file()
        self._lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except OSError as exc:
            raise unusable_dir(self.path.parent, exc.strerror or type(exc).__name__) from None
        try:
            yield
        finally:
            self._lock.release()

    def _read(self) -> _Contents:
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return _Contents([], None)
        try:
            data = migrate(json.loads(text.decode("utf-8")))
            jobs = [SavedJob.from_dict(e) for e in data["jobs"] if isinstance(e, dict)]
            return _Contents(jobs, data["last"])
        except (ValueError, TypeError, RecursionError) as exc:
            self._move_aside(exc)
            return _Contents([], None)

    def _move_aside(self, exc: Exception) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        os.replace(self.path, aside)
        print(
            f"whispercli: warning: the jobs file {self.path} could not be read ({exc}); "
            f"moved it to {aside} and started a new one",
            file=sys.stderr,
        )

    def _write(self, contents: _Contents) -> None:
        """Replace the file atomically (called under the lock)."""
        self._remove_stale_temp_files()
        body = {
            "version": SCHEMA_VERSION,
            "last": contents.last,
            "jobs": [j.to_dict() for j in contents.jobs],
        }
        atomic_write_text(self.path, json.dumps(body, indent=1) + "\n", mode=0o600)

    def _remove_stale_temp_files(self) -> None:
        """A writer killed between its temp file and the rename leaves the temp file behind.
        Temp files are only made under the lock (held with flock, released when a process
        dies), so while we hold it every one of them is such a leftover."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def _modify(self, change: Callable[[_Contents], None]) -> _Contents:
        with self._locked():
            contents = self._read()
            change(contents)
            self._write(contents)
            return contents

    # -- public API ---------------------------------------------------------------------

    def all(self) -> list[SavedJob]:
        """Every saved job, oldest first."""
        with self._locked():
            return self._read().jobs

    def newest_first(self) -> list[SavedJob]:
        """Every saved job, newest first; ``last`` first among those created at its time."""
        with self._locked():
            contents = self._read()
        order = {job.id: i for i, job in enumerate(contents.jobs)}
        last = self._last(contents)
        return sorted(
            contents.jobs,
            key=lambda j: (j.created, j is last, order[j.id]),
            reverse=True,
        )

    def add(self, job: SavedJob) -> None:
        """Save a job (replacing an entry with the same id); it becomes ``last``."""

        def change(contents: _Contents) -> None:
            contents.jobs = [j for j in contents.jobs if j.id != job.id] + [job]
            contents.last = job.id

        self._modify(change)

    def mark_last(self, job_id: str) -> None:
        """Make a saved job ``last`` (a command reused it)."""

        def change(contents: _Contents) -> None:
            if any(j.id == job_id for j in contents.jobs):
                contents.last = job_id

        self._modify(change)

    def update(self, job_id: str, **changes: Any) -> None:
        """Change fields of a saved job (no-op when it is not saved)."""

        def change(contents: _Contents) -> None:
            for job in contents.jobs:
                if job.id == job_id:
                    for key, value in changes.items():
                        setattr(job, key, value)
                    job.updated = now_iso()

        self._modify(change)

    def remove(self, ids: set[str]) -> int:
        """Forget jobs; returns how many were removed."""
        removed = 0

        def change(contents: _Contents) -> None:
            nonlocal removed
            kept = [j for j in contents.jobs if j.id not in ids]
            removed = len(contents.jobs) - len(kept)
            contents.jobs = kept
            if contents.last in ids:
                contents.last = None

        self._modify(change)
        return removed

    @staticmethod
    def _last(contents: _Contents) -> SavedJob | None:
        """The job ``last`` names, else (it was removed) the newest."""
        for job in contents.jobs:
            if job.id == contents.last:
                return job
        newest: SavedJob | None = _newest(contents.jobs, lambda j: j.created)
        return newest

    def resolve(self, ref: str) -> SavedJob:
        """A saved job by full id, unique id prefix, or ``last`` (the job the last command
        submitted or reused)."""
        with self._locked():
            contents = self._read()
        jobs = contents.jobs
        if ref == LAST:
            last = self._last(contents)
            if last is None:
                raise NotFoundError(
                    "no saved jobs yet", hint="submit one with `whispercli submit FILE`"
                )
            return last
        for job in jobs:
            if job.id == ref:
                return job
        matches = [j for j in jobs if j.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(j.id for j in matches[:10])
            raise UsageError(
                f"job reference {ref!r} is ambiguous: it matches {listed}",
                hint="give more characters of the id",
            )
        raise NotFoundError(
            f"no saved job matches {ref!r}", hint="see saved jobs with `whispercli jobs list`"
        )

    def find_reusable(
        self,
        sha256: str,
        model: str | None,
        options: dict[str, Any],
        endpoint: str,
        tier: str,
        backend: str = backends.DEFAULT,
    ) -> SavedJob | None:
        """The newest job for the same bytes, model, options, endpoint and backend that did
        not fail."""
        for job in reversed(self.all()):
            if (
                job.sha256 == sha256
                and job.model == model
                and job.tier == tier
                and job.options == options
                and job.endpoint == endpoint
                and job.backend == backend
                and job.status not in ("failed", "cancelled")
            ):
                return job
        return None
