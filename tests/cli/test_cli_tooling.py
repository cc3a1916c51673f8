"""The CLI's packaging promises: light start-up, completions in sync, documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import Cli, assert_one_error_line
from support.samples import REPO, SAMPLE_MP3

HEAVY = ("fastapi", "uvicorn", "faster_whisper", "ctranslate2", "numpy", "av", "starlette")
PYDANTIC = ("pydantic", "pydantic_core")  # typer 0.29 builds an adapter per parameter: 0.09 s
HUB = ("huggingface_hub", "tqdm")  # only `models` and `doctor` import them, inside the command


def _imported_after(args: list[str], tmp_path: Path) -> set[str]:
    code = (
        "import sys, runpy\n"
        f"sys.argv = ['whispercli', *{args!r}]\n"
        "try:\n"
        "    runpy.run_module('whispercli', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "import json\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    cli = Cli(tmp_path / "cli")
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=cli.subprocess_env(WHISPERCLI_URL="http://127.0.0.1:9"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    modules = json.loads(done.stderr.strip().splitlines()[-1])
    return {m.split(".")[0] for m in modules}


def test_help_and_status_import_no_engine_server_numpy_or_pydantic(tmp_path: Path) -> None:
    for args in (["--help"], ["status"], ["wait", "--help"], ["transcribe", "--help"]):
        top = _imported_after(args, tmp_path)
        assert "whispercli" in top  # the probe ran the real app
        heavy = {*HEAVY, *HUB, *PYDANTIC}
        assert not top & heavy, (args, top & heavy)


def test_help_lists_exit_codes_and_commands(tmp_path: Path) -> None:
    done = Cli(tmp_path / "cli").run("--help")
    assert done.code == 0
    assert "7 timed out waiting" in done.out and "130 interrupted" in done.out
    commands = ("transcribe", "upload", "submit", "status", "wait", "jobs", "server", "config")
    for command in (*commands, "models", "doctor"):
        assert command in done.out


def test_version(tmp_path: Path) -> None:
    from whispercli.version import __version__

    done = Cli(tmp_path / "cli").run("--version")
    assert done.code == 0 and done.out.strip() == f"whispercli {__version__}"


def test_completion_scripts_match_the_app() -> None:
    sys.path.insert(0, str(REPO / "completions"))
    try:
        import generate
    finally:
        sys.path.pop(0)
    expected = generate.scripts()
    assert set(expected) == {"whispercli.bash", "_whispercli", "whispercli.fish"}
    for name, text in expected.items():
        committed = (REPO / "completions" / name).read_text(encoding="utf-8")
        assert committed == text, f"completions/{name} drifted: run python completions/generate.py"
        assert "_WHISPERCLI_COMPLETE" in text


def test_job_arguments_complete_from_saved_jobs(tmp_path: Path) -> None:
    from whispercli.state import JobStore, SavedJob

    cli = Cli(tmp_path / "cli")
    store = JobStore(cli.jobs_file)
    store.add(SavedJob(id="abc123aaaa", endpoint="http://x"))
    store.add(SavedJob(id="abd456bbbb", endpoint="http://x"))
    done = subprocess.run(
        [sys.executable, "-m", "whispercli"],
        env=cli.subprocess_env(
            _WHISPERCLI_COMPLETE="complete_bash", COMP_WORDS="whispercli wait ab", COMP_CWORD="2"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["abd456bbbb", "abc123aaaa"]


def test_config_precedence_through_the_cli(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    assert cli.run("config", "set", "url", "http://127.0.0.1:7001").code == 0
    shown = json.loads(cli.run("config", "show", "--json").out)
    assert shown["url"] == "http://127.0.0.1:7001" and shown["auto_start"] is False
    env_wins = json.loads(
        cli.run("config", "show", "--json", WHISPERCLI_URL="http://127.0.0.1:7002").out
    )
    assert env_wins["url"] == "http://127.0.0.1:7002"
    flag_wins = json.loads(
        cli.run(
            "--url",
            "http://127.0.0.1:7003",
            "config",
            "show",
            "--json",
            WHISPERCLI_URL="http://127.0.0.1:7002",
        ).out
    )
    assert flag_wins["url"] == "http://127.0.0.1:7003"
    tiyaro = json.loads(
        cli.run("--profile", "tiyaro", "config", "show", "--json", TIYARO_API_KEY="t-key").out
    )
    assert tiyaro["url"] == "https://api.tiyaro.ai" and tiyaro["key_source"] == "TIYARO_API_KEY"
    assert "t-key" not in json.dumps(tiyaro)
    assert cli.run("config", "path").out.strip().endswith("config.toml")


def test_corrupt_config_names_file_and_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    config = Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml"
    config.write_text('profile = "local"\n[profiles.local\nurl = 1\n')
    done = cli.run("status")
    assert done.code == 1
    assert str(config) in done.err and "line 2" in done.err
    assert "Traceback" not in done.err


# -- issue 19 --------------------------------------------------------------------------------

NOWHERE = {"WHISPERCLI_URL": "http://127.0.0.1:9"}


@pytest.mark.parametrize(
    ("key", "bad", "said"),
    [
        ("tier", "superflex", "a tier is one of cpuflex, gpuflex"),
        ("backend", "whisperx", "a backend is one of tiyaro, edenai, octoai"),
        ("url", "ftp://box", "http:// or https://"),
        ("api_key_env", "MY-KEY", "environment variable"),
        ("providers", " , ", "comma-separated"),
        ("model", " ", "cannot be empty"),
    ],
)
def test_config_set_checks_every_value(tmp_path: Path, key: str, bad: str, said: str) -> None:
    """Item 7: a value that would break later commands is refused when it is set."""
    cli = Cli(tmp_path / "cli")
    done = cli.run("config", "set", key, bad, "--profile", "lab")
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert said in done.err and f"valid {key}" in done.err
    assert not (Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").exists()


def test_a_bad_value_in_the_file_is_named_by_file_and_key_not_as_a_flag(tmp_path: Path) -> None:
    """Item 7: `tier = "superflex"` written by hand: the file and the key, not "--tier"."""
    cli = Cli(tmp_path / "cli")
    config = Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml"
    config.write_text('[profiles.lab]\nurl = "http://127.0.0.1:9"\ntier = "superflex"\n')
    done = cli.run("--profile", "lab", "transcribe", str(SAMPLE_MP3), **NOWHERE)
    assert done.code == 1, done.err
    assert_one_error_line(done.err)
    assert f"the config file {config} is invalid: profiles.lab.tier is 'superflex'" in done.err
    assert "--tier" not in done.err and "config set tier VALUE --profile lab" in done.err


def test_a_misspelt_key_suggests_the_name_and_unset_removes_it(tmp_path: Path) -> None:
    """Item 8: `modle = "tiny"` says "did you mean model?"; `config unset modle --profile
    lab` removes it (it said "was not set" and left it)."""
    cli = Cli(tmp_path / "cli")
    config = Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml"
    config.write_text('[profiles.lab]\nurl = "http://127.0.0.1:9"\nmodle = "tiny"\n')
    broken = cli.run("--profile", "lab", "status", **NOWHERE)
    assert broken.code == 1, broken.err
    assert "profiles.lab.modle is not a setting" in broken.err
    assert "did you mean model?" in broken.err
    removed = cli.run("config", "unset", "modle", "--profile", "lab")
    assert removed.code == 0 and "removed modle" in removed.err, removed.err
    assert "modle" not in config.read_text() and 'url = "http://127.0.0.1:9"' in config.read_text()
    assert cli.run("--profile", "lab", "config", "show").err == ""
    typo = cli.run("config", "set", "modle", "tiny", "--profile", "lab")
    assert typo.code == 2 and "did you mean model?" in typo.err, typo.err


def test_root_help_names_every_builtin_profile(tmp_path: Path) -> None:
    """Polish: the edenai profile was missing, then the openai one."""
    text = Cli(tmp_path / "cli").run("--help").out
    assert "local, tiyaro, edenai, openai or your own" in " ".join(text.split())
