"""A file over the server's upload limit is refused before it is hashed or sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.cli import Cli
from support.servers import ServerFactory

from whispercli.cli import jobflow
from whispercli.units import human_bytes


def test_human_bytes_says_gib_not_bytes() -> None:
    assert human_bytes(4 * 1024**3) == "4 GiB"
    assert human_bytes(5_000_000_000) == "4.66 GiB"
    assert human_bytes(1536) == "1.5 KiB" and human_bytes(12) == "12 bytes"


def test_too_big_is_refused_before_hashing(
    server_factory: ServerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = server_factory.start("--max-upload-mb", "1", fake_engine=0.1)  # refused before
    big = tmp_path / "big.wav"
    with big.open("wb") as out:
        out.truncate(2 * 1024 * 1024 + 1)

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"{path} was hashed")

    monkeypatch.setattr(jobflow, "sha256_file", no_hashing)
    cli = Cli(tmp_path / "cli", server)
    for command in (("transcribe",), ("submit",), ("upload",)):
        done = cli.run(*command, str(big))
        assert done.code == 1, done.err
        assert "big.wav is 2 MiB, more than the server's upload limit of 1 MiB" in done.err
        assert "bytes" not in done.err
