"""Quantities as people read them (shared by the client and the server; imports nothing)."""

from __future__ import annotations


def human_bytes(size: int) -> str:
    """``4294967296`` -> ``"4 GiB"``, ``1536`` -> ``"1.5 KiB"`` (binary units, as limits are)."""
    value, unit = float(size), "bytes"
    for name in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, name
    return f"{value:.3g} {unit}" if unit != "bytes" else f"{size} bytes"
