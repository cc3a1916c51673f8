"""`whispercli doctor`: passes on this machine, and names the fix of what is broken."""

from __future__ import annotations

import json
import os
from pathlib import Path

from support.cli import Cli
from support.net import free_port


def doctor(cli: Cli, *args: str, **env: str) -> tuple[int, str]:
    done = cli.sub("doctor", *args, **{"HF_HUB_OFFLINE": "1", **env})
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout


def test_doctor_passes_here(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    code, out = doctor(cli, WHISPERCLI_LOCAL_PORT=str(free_port()))
    assert code == 0, out
    lines = out.splitlines()
    names = [line.split(":", 1)[0].split(maxsplit=1)[1] for line in lines]
    assert names == [
        "python",
        "packages",
        "audio",
        "models",
        "hf endpoint",
        "cuda",
        "endpoint",
        "key file",
        "jobs file",
    ]
    assert all(line.startswith(("ok  ", "warn")) for line in lines), out
    assert "tiny (shipped: " in out and "offline (HF_HUB_OFFLINE)" in out
    assert "no CUDA device" in out and "not running (starts on demand)" in out

    code, out = doctor(cli, "--json", WHISPERCLI_LOCAL_PORT=str(free_port()))
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert {c["name"] for c in report["checks"] if c["ok"]} >= {"python", "audio", "models"}


def test_doctor_names_the_fix_for_a_readable_key_and_an_unreachable_endpoint(
    tmp_path: Path,
) -> None:
    cli = Cli(tmp_path / "cli")
    key = Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "api-key"
    key.write_text("secret\n")
    os.chmod(key, 0o644)
    url = f"http://127.0.0.1:{free_port()}"
    code, out = doctor(cli, WHISPERCLI_URL=url)
    assert code == 1
    failed = {line.split(":", 1)[0]: line for line in out.splitlines() if line.startswith("FAIL")}
    assert set(failed) == {"FAIL  endpoint", "FAIL  key file"}, out
    assert f"-> fix: chmod 600 {key}" in failed["FAIL  key file"]
    assert url in failed["FAIL  endpoint"] and "--url" in failed["FAIL  endpoint"]

    os.chmod(key, 0o600)
    report = json.loads(doctor(cli, "--json", WHISPERCLI_URL=url)[1])
    assert [c["name"] for c in report["checks"] if not c["ok"]] == ["endpoint"]
