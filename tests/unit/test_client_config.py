"""config.py: flags > env > config file > the local default; named profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from whispercli import config, paths
from whispercli.errors import UsageError, WhisperCliError


@pytest.fixture(autouse=True)
def _clean(isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("WHISPERCLI_LOCAL_PORT", "TIYARO_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_local_default_reads_the_key_file_lazily() -> None:
    settings = config.resolve()
    assert settings.url == paths.DEFAULT_LOCAL_URL and settings.auto_start
    assert settings.key_file == paths.api_key_file() and not settings.key_file.exists()
    key = settings.resolve_api_key()
    assert key and paths.api_key_file().read_text().strip() == key


def test_local_port_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPERCLI_LOCAL_PORT", "9123")
    assert config.resolve().url == "http://127.0.0.1:9123"
    monkeypatch.setenv("WHISPERCLI_LOCAL_PORT", "http")
    with pytest.raises(UsageError):
        config.resolve()


def test_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    config.set_value("url", "http://file:1")
    config.set_value("api_key", "file-key")
    s = config.resolve()
    assert (s.url, s.api_key, s.auto_start) == ("http://file:1", "file-key", False)
    monkeypatch.setenv("WHISPERCLI_URL", "http://env:2")
    monkeypatch.setenv("WHISPERCLI_API_KEY", "env-key")
    s = config.resolve()
    assert (s.url, s.api_key, s.key_source) == ("http://env:2", "env-key", "WHISPERCLI_API_KEY")
    s = config.resolve(url="http://flag:3/", api_key="flag-key")
    assert (s.url, s.api_key, s.key_source) == ("http://flag:3", "flag-key", "--api-key")


def test_tiyaro_profile_and_custom_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIYARO_API_KEY", "tk")
    s = config.resolve(profile="tiyaro")
    assert (s.url, s.api_key, s.key_source, s.auto_start) == (
        config.TIYARO_URL,
        "tk",
        "TIYARO_API_KEY",
        False,
    )
    config.set_value("url", "http://lab:8642", profile="lab")
    config.set_value("profile", "lab")
    s = config.resolve()
    assert (s.profile, s.url, s.api_key) == ("lab", "http://lab:8642", None)
    monkeypatch.setenv("WHISPERCLI_PROFILE", "tiyaro")
    assert config.resolve().profile == "tiyaro"
    with pytest.raises(UsageError, match="known profiles"):
        config.resolve(profile="nope")
    with pytest.raises(UsageError):
        config.set_value("colour", "blue")


def test_corrupt_file_names_file_and_line() -> None:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('profile = "local"\nurl = \n')
    with pytest.raises(WhisperCliError, match=r"config\.toml.*line 2"):
        config.resolve()
    path.write_text("[profiles]\nlocal = 3\n")
    with pytest.raises(WhisperCliError, match="profiles"):
        config.resolve()
    assert isinstance(path, Path)


def test_durations() -> None:
    import typer

    from whispercli.cli.context import parse_duration

    assert parse_duration("90") == 90
    assert parse_duration("1h30m") == 5400
    assert parse_duration("1.5m") == 90
    assert parse_duration("7d") == 7 * 86400
    for bad in ("", "soon", "5 m", "1x"):
        with pytest.raises(typer.BadParameter):
            parse_duration(bad)
