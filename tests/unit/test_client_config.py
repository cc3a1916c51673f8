"""config.py: flags > env > config file > the local default; named profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

import whispercli.config as config
import whispercli.paths as paths
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


def test_set_profile_must_name_an_existing_profile() -> None:
    with pytest.raises(UsageError, match="unknown profile 'nosuch'"):
        config.set_value("profile", "nosuch")
    assert not paths.config_file().exists()
    config.set_value("url", "http://lab:1", profile="lab")
    config.set_value("profile", "lab")
    assert config.resolve().profile == "lab"


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[profiles.local]\nurl = 5\n", "profiles.local.url", "a string, not an integer"),
        ("profile = true\n", "profile", "a string, not a boolean"),
        ('[profiles.lab]\nurl = "http://x:1"\ntier = ["a"]\n', "profiles.lab.tier", "a string"),
        ("url = 5\n", "url is not a top-level setting", "[profiles.NAME]"),
        ('[profiles.lab]\ncolour = "blue"\n', "profiles.lab.colour", "not a setting"),
    ],
)
def test_a_wrong_type_is_one_error_naming_file_key_and_type(
    text: str, key: str, expected: str
) -> None:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    with pytest.raises(WhisperCliError) as caught:
        config.resolve()
    assert caught.value.exit_code == 1
    assert str(path) in caught.value.message
    assert key in caught.value.message and expected in caught.value.message


def test_unset_repairs_a_bad_value() -> None:
    path = paths.config_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('profile = "local"\n[profiles.local]\nurl = 5\nmodel = "small"\n')
    assert config.unset_value("url")
    assert config.resolve().model == "small" and config.resolve().auto_start
    assert not config.unset_value("url")
    assert config.unset_value("profile")
    assert "profile =" not in path.read_text()


def test_exit_code_help_is_derived_from_the_enum() -> None:
    from whispercli.errors import EXIT_CODE_HELP, ExitCode

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code in ExitCode:
        assert f"{code.value} {code.description}" in EXIT_CODE_HELP
        assert f"| {code.value} |" in readme
    assert EXIT_CODE_HELP.count(",") == len(ExitCode) - 1
