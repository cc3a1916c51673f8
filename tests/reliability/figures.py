"""The figures the reliability tests measure, gathered for docs/RELIABILITY.md.

Tests call :func:`record` / :func:`bump`; the conftest prints everything at the end of the
session and, when ``WHISPERCLI_RELIABILITY_FIGURES`` names a file, writes it there as JSON.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

FIGURES: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()


def record(section: str, **values: Any) -> None:
    with _LOCK:
        FIGURES.setdefault(section, {}).update(values)


def bump(section: str, key: str, n: int = 1) -> None:
    with _LOCK:
        entry = FIGURES.setdefault(section, {})
        entry[key] = entry.get(key, 0) + n


def dump() -> str:
    with _LOCK:
        text = json.dumps(FIGURES, indent=2, sort_keys=True)
    target = os.environ.get("WHISPERCLI_RELIABILITY_FIGURES")
    if target:
        Path(target).write_text(text + "\n", encoding="utf-8")
    return text
