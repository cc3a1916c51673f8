"""Downloads tests need, made once per machine rather than on every run.

A few tests run third-party code fetched from PyPI (the OctoAI SDK the seed sample uses,
openai-whisper's subtitle writers as a reference). :func:`cached` keeps each in a folder under
``$XDG_CACHE_HOME/whispercli-tests`` (``~/.cache`` by default): filled by ``fill`` into a
scratch folder and renamed into place only when complete, so an interrupted download is never
taken for a finished one. Tests still check what they take from it (a pinned version, a hash).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "whispercli-tests"


def cached(name: str, fill: Callable[[Path], None]) -> Path:
    """The folder ``name`` of the cache, filled once by ``fill(folder)``."""
    target = ROOT / name
    if target.is_dir():
        return target
    ROOT.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=ROOT))
    try:
        fill(scratch)
        scratch.rename(target)  # whole or not at all
    except OSError:
        if not target.is_dir():  # not another run that cached it meanwhile
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def pip(*args: str) -> Callable[[Path], None]:
    """A ``fill`` that runs ``pip ARGS`` with ``{dir}`` replaced by the folder."""

    def run(folder: Path) -> None:
        argv = [a.replace("{dir}", str(folder)) for a in args]
        subprocess.run([sys.executable, "-m", "pip", *argv], check=True, timeout=300)

    return run
