"""Environment variables read as numbers, with one message for a bad value (shared by the
client and the server; imports nothing heavy)."""

from __future__ import annotations

import math
import os

from whispercli.errors import UsageError, WhisperCliError


def env_seconds(
    name: str,
    default: float,
    *,
    most: float = math.inf,
    zero: bool = False,
    unset: str = "",
    error: type[WhisperCliError] = UsageError,
) -> float:
    """The environment variable ``name`` as seconds (``default`` when unset or empty).

    A value that is not a finite number above 0 (or at least 0 with ``zero``) and at most
    ``most`` is an ``error`` that names the variable, so a typo stops the command at start
    instead of a bare ValueError or a negative period. ``unset`` says what leaving it unset
    means (default: ``default`` seconds).
    """
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if zero else value > 0
    if math.isfinite(value) and low_ok and value <= most:
        return value
    wanted = f"a number of seconds {'from 0' if zero else 'above 0'}"
    wanted += f" up to {most:g}" if math.isfinite(most) else ""
    raise error(
        f"{name}={raw[:40]!r} is not {wanted}",
        hint=f"set it to one or unset it ({unset or f'default {default:g}'})",
    )
