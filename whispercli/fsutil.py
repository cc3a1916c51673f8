"""Small file-system helpers: atomic writes and secret files."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write_text(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half.

    The data goes to a temporary file in the same directory, is fsynced, then replaces
    ``path`` with ``os.replace``: a crash at any point leaves the old file intact.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def is_private(path: Path) -> bool:
    """True when neither group nor others can read or write ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def read_or_create_secret(path: Path, make: Callable[[], str] | None = None) -> str:
    """Return the secret in ``path``, creating one (mode 0600, from ``make``, random by
    default) on first use.

    The new secret is written to a private temporary file and published with ``os.link``,
    which fails if ``path`` exists: a racing process never reads a half-written (empty) file,
    and every process ends up with the one secret that won.
    """
    try:
        existing = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        existing = None
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = make() if make is not None else secrets.token_urlsafe(32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(secret + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if existing == "":  # an empty file left by hand or by an old crash: replace it
            os.replace(tmp, path)
            return secret
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_text(encoding="utf-8").strip()
        return secret
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
