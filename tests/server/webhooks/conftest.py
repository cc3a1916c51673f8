"""Fixtures that keep webhook tests off the network: a connect tripwire and a fake resolver."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from whispercli.server.webhooks import guard

_real_connect = socket.socket.connect


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fail the test if any socket connects to a non-loopback address; returns the attempts."""
    attempts: list[object] = []

    def connect(self: socket.socket, address: object) -> None:
        attempts.append(address)
        host = address[0] if isinstance(address, tuple) else ""
        if host not in ("127.0.0.1", "::1"):
            pytest.fail(f"a socket tried to connect to {address!r}")
        _real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


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
