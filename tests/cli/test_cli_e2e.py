"""End to end: the CLI against a real server (tests/conftest.py `server`), in-process where
only speed matters and as subprocesses where separate processes are the point."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.audio import make_tone
from support.cli import Cli, assert_one_error_line, interrupt_while_waiting
from support.samples import REPO, SAMPLE_MP3, assert_sample

from whispercli.client import Client
from whispercli.errors import WhisperCliError


def saved_jobs(cli: Cli) -> list[dict]:
    return json.loads(cli.jobs_file.read_text())["jobs"]


def test_transcribe_prints_the_sample_transcript(cli: Cli) -> None:
    done = cli.run("transcribe", str(SAMPLE_MP3))
    assert done.code == 0, done.err
    assert_sample(done.out)
    assert done.err == ""  # not a terminal: no progress, no notes
    [entry] = saved_jobs(cli)
    assert entry["status"] == "success" and entry["sha256"] and entry["size"] > 0


def test_submit_in_one_process_wait_last_in_another(cli: Cli) -> None:
    submitted = cli.sub("submit", "-q", str(SAMPLE_MP3), "--force")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert len(job_id.split()) == 1 and job_id
    waited = cli.sub("wait", "last")
    assert waited.returncode == 0, waited.stderr
    assert_sample(waited.stdout)
    assert saved_jobs(cli)[-1]["id"] == job_id


@pytest.mark.parametrize("consumer", ["xargs {cli} wait", "{cli} wait"])
def test_submit_quiet_pipes_into_wait(cli: Cli, consumer: str) -> None:
    exe = f"{sys.executable} -m whispercli"
    script = f"{exe} submit -q --force {SAMPLE_MP3} | {consumer.format(cli=exe)}"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        env=cli.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert_sample(done.stdout)


def _busy_job(cli: Cli, tmp_path: Path) -> str:
    """A job that keeps running for a while (on the busy server; on a real one a 90 s tone
    decoded window by window would)."""
    long_audio = make_tone(tmp_path / "long.wav", 90)
    args = ("submit", "-q", "--speed", "accurate", "--no-vad-filter", str(long_audio))
    return cli.run(*args).out.strip()


@pytest.mark.busy_server
def test_wait_timeout_exits_7_with_resume_command(cli: Cli, tmp_path: Path) -> None:
    job_id = _busy_job(cli, tmp_path)
    try:
        started = time.monotonic()
        done = cli.sub("wait", "--timeout", "1", job_id)
        assert time.monotonic() - started < 20
        assert done.returncode == 7, done.stderr
        assert f"whispercli wait {job_id}" in done.stderr
        assert done.stdout == ""
        assert_one_error_line(done.stderr)
    finally:
        cli.run("jobs", "cancel", job_id)


@pytest.mark.busy_server
def test_ctrl_c_while_waiting_leaves_the_job_and_prints_resume(cli: Cli, tmp_path: Path) -> None:
    job_id = _busy_job(cli, tmp_path)
    try:
        proc = cli.start("--debug", "wait", job_id)
        _out, err = interrupt_while_waiting(proc)
        assert proc.returncode == 130, err
        assert f"whispercli wait {job_id}" in err
        assert "Traceback" not in err
        status = cli.run("status", "--json", job_id)
        assert json.loads(status.out)["status"] in ("accepted", "pending", "processing")
    finally:
        cli.run("jobs", "cancel", job_id)


def test_failed_job_exits_3(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "notes.mp3"
    junk.write_bytes(os.urandom(4000))
    done = cli.sub("transcribe", str(junk))
    assert done.returncode == 3, done.stderr
    assert "failed" in done.stderr
    assert_one_error_line(done.stderr)
    assert saved_jobs(cli)[-1]["status"] == "failed"


def test_unknown_job_exits_4(cli: Cli) -> None:
    done = cli.sub("status", "0123456789abcdef0123456789abcdef")
    assert done.returncode == 4, done.stderr
    assert_one_error_line(done.stderr)
    done = cli.sub("wait", "nope")
    assert done.returncode == 4, done.stderr
    assert_one_error_line(done.stderr)


def test_wrong_key_exits_5_without_printing_it(cli: Cli) -> None:
    done = cli.sub("transcribe", str(SAMPLE_MP3), WHISPERCLI_API_KEY="wrong-key-123")
    assert done.returncode == 5, done.stderr
    assert "WHISPERCLI_API_KEY" in done.stderr  # says which source the key came from
    assert "wrong-key-123" not in done.stderr
    assert_one_error_line(done.stderr)


def test_no_server_at_explicit_url_exits_6_without_auto_start(cli: Cli, free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    started = time.monotonic()
    done = cli.sub("transcribe", str(SAMPLE_MP3), WHISPERCLI_URL=url)
    assert done.returncode == 6, done.stderr
    assert time.monotonic() - started < 15
    assert url in done.stderr
    assert_one_error_line(done.stderr)
    assert not list(Path(cli.env["WHISPERCLI_STATE_DIR"]).glob("server-*.pid"))


def test_twenty_concurrent_submits_lose_no_entry(cli: Cli, tmp_path: Path) -> None:
    clip = make_tone(tmp_path / "beep.wav", 0.3)
    procs = [cli.start("submit", "-q", "--force", str(clip)) for _ in range(20)]
    ids, errors = [], []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            ids.append(out.strip())
            errors.append((proc.returncode, err))
    finally:
        for proc in procs:
            proc.kill()  # none is left behind if one hangs (no-op once it exited)
    for code, err in errors:
        assert code == 0, err
    entries = saved_jobs(cli)
    assert len(entries) == 20
    assert {e["id"] for e in entries} == set(ids)
    assert (cli.jobs_file.stat().st_mode & 0o777) == 0o600
    # Free the server's worker for the next tests.
    client = Client(url=cli.env["WHISPERCLI_URL"], api_key=cli.env["WHISPERCLI_API_KEY"])
    for job_id in ids:
        with contextlib.suppress(WhisperCliError):  # 409: finished already
            client.cancel(job_id)


def test_corrupt_state_file_is_moved_aside_and_the_command_works(cli: Cli) -> None:
    cli.jobs_file.parent.mkdir(parents=True, exist_ok=True)
    cli.jobs_file.write_text('{"version": 1, "jobs": [ {"id": ')
    done = cli.sub("submit", "-q", "--force", str(SAMPLE_MP3))
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stderr and "corrupt" in done.stderr
    assert "Traceback" not in done.stderr
    [aside] = cli.jobs_file.parent.glob("jobs.json.corrupt-*")
    assert aside.read_text().startswith('{"version": 1')
    assert [e["id"] for e in saved_jobs(cli)] == [done.stdout.strip()]


def test_output_files_parse_with_real_readers(cli: Cli, tmp_path: Path) -> None:
    import srt
    import webvtt

    out_dir = tmp_path / "out"
    done = cli.run("transcribe", str(SAMPLE_MP3), "-o", str(out_dir), "-f", "all")
    assert done.code == 0, done.err
    assert done.out == ""
    assert sorted(p.name for p in out_dir.iterdir()) == [
        f"sample.{ext}" for ext in ("json", "srt", "tsv", "txt", "vtt")
    ]
    subs = list(srt.parse((out_dir / "sample.srt").read_text()))
    captions = webvtt.read(str(out_dir / "sample.vtt")).captions
    rows = [line.split("\t") for line in (out_dir / "sample.tsv").read_text().splitlines()]
    data = json.loads((out_dir / "sample.json").read_text())
    assert rows[0] == ["start", "end", "text"]
    assert len(subs) == len(captions) == len(rows) - 1 == len(data["segments"]) >= 1

    def monotonic(pairs: list[tuple[float, float]]) -> bool:
        flat = [t for pair in pairs for t in pair]
        return all(a <= b for a, b in itertools.pairwise(flat))

    assert monotonic([(s.start.total_seconds(), s.end.total_seconds()) for s in subs])
    assert monotonic([(c.start_in_seconds, c.end_in_seconds) for c in captions])
    assert monotonic([(int(r[0]), int(r[1])) for r in rows[1:]])
    assert monotonic([(s["start"], s["end"]) for s in data["segments"]])
    assert_sample((out_dir / "sample.txt").read_text())
    assert_sample(" ".join(s.content for s in subs))


def test_same_file_and_options_reuse_the_job_unless_forced(cli: Cli) -> None:
    first = cli.run("transcribe", str(SAMPLE_MP3))
    again = cli.run("transcribe", str(SAMPLE_MP3))
    assert first.code == again.code == 0
    assert again.out == first.out
    assert "reusing job" in again.err
    assert len(saved_jobs(cli)) == 1
    other_options = cli.run("transcribe", "-l", "en", str(SAMPLE_MP3))
    assert other_options.code == 0 and "reusing" not in other_options.err
    forced = cli.run("transcribe", "--force", str(SAMPLE_MP3))
    assert forced.code == 0 and "reusing" not in forced.err
    assert len({e["id"] for e in saved_jobs(cli)}) == 3


def test_skip_existing_and_directory_input(cli: Cli, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.mp3").write_bytes(SAMPLE_MP3.read_bytes())
    make_tone(inputs / "b.wav", 0.5)
    (inputs / "readme.txt").write_text("not audio")
    out_dir = tmp_path / "out"
    done = cli.run("transcribe", str(inputs), "-o", str(out_dir), "-f", "txt", "-f", "srt")
    assert done.code == 0, done.err
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.srt", "a.txt", "b.srt", "b.txt"]
    assert_sample((out_dir / "a.txt").read_text())
    before = {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()}
    jobs_before = len(saved_jobs(cli))
    again = cli.run(
        "transcribe",
        str(inputs),
        "-o",
        str(out_dir),
        "-f",
        "txt",
        "-f",
        "srt",
        "--skip-existing",
        "--force",
    )
    assert again.code == 0, again.err
    assert again.err.count("skipped") == 1  # one line for the batch (issue 19, polish)
    assert f"skipped 2 of 2 inputs: their outputs exist in {out_dir}" in again.err
    assert {p.name: p.stat().st_mtime_ns for p in out_dir.iterdir()} == before
    assert len(saved_jobs(cli)) == jobs_before


def test_stdin_input(cli: Cli) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "whispercli", "transcribe", "-"],
        env=cli.subprocess_env(),
        stdin=SAMPLE_MP3.open("rb"),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_sample(done.stdout.decode())


def test_json_everywhere_and_jobs_commands(cli: Cli) -> None:
    sub = json.loads(cli.run("submit", "--json", "--force", str(SAMPLE_MP3)).out)
    job_id = sub["id"]
    waited = json.loads(cli.run("wait", "--json", job_id[:6]).out)
    assert waited[0]["id"] == job_id and waited[0]["segments"]
    status = json.loads(cli.run("status", "--json").out)
    assert status["id"] == job_id and status["status"] == "success"
    assert "urls" not in status and "sig=" not in json.dumps(status)
    listed = json.loads(cli.run("jobs", "list", "--json").out)
    assert listed[0]["id"] == job_id
    remote = json.loads(cli.run("jobs", "list", "--remote", "--json").out)
    assert job_id in {j["id"] for j in remote}
    shown = json.loads(cli.run("jobs", "show", "--json", "last").out)
    assert shown["server"]["result"]["text"] and "poll_url" not in shown["saved"]
    assert cli.run("jobs", "cancel", job_id).code == 0  # already finished: a note, exit 0
    pruned = json.loads(cli.run("jobs", "prune", "--json").out)
    assert pruned == {"removed": 1, "gone": 0, "unanswered": 0}
    assert cli.run("status", job_id[:6]).code == 4  # a prefix of a forgotten job
    assert json.loads(cli.run("jobs", "list", "--json").out) == []


def test_upload_prints_a_url_submit_accepts(cli: Cli) -> None:
    up = cli.run("upload", str(SAMPLE_MP3))
    assert up.code == 0, up.err
    url = up.out.strip()
    assert url.startswith("http") and "sig=" in url
    job_id = cli.run("submit", "-q", url).out.strip()
    done = cli.run("wait", job_id)
    assert done.code == 0, done.err
    assert_sample(done.out)


@pytest.mark.busy_server
def test_ctrl_c_during_a_parallel_transcribe_names_every_running_job(
    cli: Cli, tmp_path: Path
) -> None:
    a, b = make_tone(tmp_path / "a.wav", 90), make_tone(tmp_path / "b.wav", 91)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "whispercli",
            "transcribe",
            "--speed",
            "accurate",
            "--no-vad-filter",
            str(a),
            str(b),
        ],
        env=cli.subprocess_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            not cli.jobs_file.exists() or len(saved_jobs(cli)) < 2
        ):
            time.sleep(0.1)
        ids = [e["id"] for e in saved_jobs(cli)]
        assert len(ids) == 2
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "Traceback" not in err
        resume = next(line for line in err.splitlines() if "whispercli wait" in line)
        assert all(job_id in resume for job_id in ids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for job_id in [e["id"] for e in saved_jobs(cli)] if cli.jobs_file.exists() else []:
            cli.run("jobs", "cancel", job_id)


# -- issue 19 --------------------------------------------------------------------------------


def test_a_model_the_server_lacks_is_named_as_given_with_a_hint(cli: Cli, server: Any) -> None:
    """Item 12: no internal `whisper-` prefix, and a hint (a remote endpoint: its list)."""
    done = cli.run("transcribe", "-m", "nosuchmodel", str(SAMPLE_MP3))
    assert done.code == 4, done.err
    assert_one_error_line(done.err)
    assert "model 'nosuchmodel' is not installed on this server" in done.err
    assert "whisper-nosuchmodel" not in done.err
    assert f"hint: `whispercli models list` lists the models of {server.url}" in done.err


def test_the_metadata_address_refusal_does_not_promise_a_flag(cli: Cli) -> None:
    """Item 13: --webhook-allow-private never allows the cloud metadata address, so its
    refusal does not mention it; a private address's does."""
    metadata = cli.run("submit", "--webhook", "http://169.254.169.254/latest", str(SAMPLE_MP3))
    assert metadata.code == 1, metadata.err
    assert "cloud metadata address" in metadata.err
    assert "webhook-allow-private" not in metadata.err
    private = cli.run("submit", "--webhook", "http://10.0.0.1/hook", str(SAMPLE_MP3))
    assert private.code == 1 and "--webhook-allow-private allows it" in private.err
