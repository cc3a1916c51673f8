"""Fixtures that keep webhook tests off the network: a fake resolver (the connect and DNS
tripwires, ``no_connect`` and ``no_dns``, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from whispercli.server.webhooks import guard


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[str]]], None]:
    """``names({"hook.test": ["10.0.0.5"]})``: the guard resolves only these names."""
    table: dict[str, list[str]] = {}

    def resolve(host: str, port: int) -> list[str]:
        if host in table:
            return table[host]
        try:  # literal addresses resolve to themselves, without a lookup
            import ipaddress

            return [str(ipaddress.ip_address(host))]
        except ValueError:
            raise guard.RefusedUrl(f"cannot resolve {host!r}") from None

    monkeypatch.setattr(guard, "resolve", resolve)
    return table.update
