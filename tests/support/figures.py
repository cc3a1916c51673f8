"""The figures the reliability tests measure, gathered for docs/RELIABILITY.md.

Tests call :func:`record` (a value: the last one stays) and :func:`bump` (a count: added up).
tests/conftest.py prints them all at the end of the session and, when
``WHISPERCLI_RELIABILITY_FIGURES`` names a file, writes them there as JSON. With pytest-xdist
each worker sends its figures to the controller (:func:`export` / :func:`merge`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

RECORDS: dict[str, dict[str, Any]] = {}
COUNTS: dict[str, dict[str, int]] = {}
_LOCK = threading.Lock()


def record(section: str, **values: Any) -> None:
    with _LOCK:
        RECORDS.setdefault(section, {}).update(values)


def bump(section: str, key: str, n: int = 1) -> None:
    with _LOCK:
        entry = COUNTS.setdefault(section, {})
        entry[key] = entry.get(key, 0) + n


def export() -> str:
    """This process's figures, for the controller of an xdist run."""
    with _LOCK:
        return json.dumps({"records": RECORDS, "counts": COUNTS})


def merge(exported: str) -> None:
    """Add a worker's figures (:func:`export`) to this process's."""
    data = json.loads(exported)
    for section, values in data["records"].items():
        record(section, **values)
    for section, counts in data["counts"].items():
        for key, n in counts.items():
            bump(section, key, n)


def any_figures() -> bool:
    return bool(RECORDS or COUNTS)


def dump() -> str:
    with _LOCK:
        merged: dict[str, dict[str, Any]] = {s: dict(v) for s, v in RECORDS.items()}
        for section, counts in COUNTS.items():
            merged.setdefault(section, {}).update(counts)
        text = json.dumps(merged, indent=2, sort_keys=True)
    target = os.environ.get("WHISPERCLI_RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(text + "\n", encoding="utf-8")
    return text
