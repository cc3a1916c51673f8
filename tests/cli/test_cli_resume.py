"""Resuming saved jobs against a real server: `wait` of several jobs, `last`, a job's own
endpoint and profile, the jobs commands, config repair, `server status --url`."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from support.audio import make_tone
from support.cli import Cli, assert_one_error_line, in_a_terminal, interrupt_while_waiting
from support.net import serve_http
from support.protocol import list_jobs
from support.samples import SAMPLE_MP3, assert_sample
from support.servers import Server, serve_module

from whispercli.client import Client


# The tones (make_tone) in the tests below stand in for long speech: they pass --no-vad-filter,
# or the VAD would find no speech in them and the jobs would end at once. Tests that only need
# jobs still running (``busy_server``) send them to minute-long fake-engine jobs instead.
def junk(tmp_path: Path) -> Path:
    bad = tmp_path / "notes.mp3"
    bad.write_bytes(os.urandom(4000))
    return bad


def submit(cli: Cli, *args: str, **env: str) -> str:
    done = cli.run("submit", "-q", *args, **env)
    assert done.code == 0, done.err
    return done.out.strip()


def saved_jobs(cli: Cli) -> list[dict[str, Any]]:
    return json.loads(cli.jobs_file.read_text())["jobs"]


# -- 3. wait of several jobs keeps the good transcripts ----------------------------------------


def test_wait_of_several_jobs_prints_every_transcript_when_one_fails(
    cli: Cli, tmp_path: Path
) -> None:
    good = submit(cli, "--force", str(SAMPLE_MP3))
    bad = submit(cli, str(junk(tmp_path)))
    for order in ([good, bad], [bad, good]):
        done = cli.run("wait", *order)
        assert done.code == 3, done.err
        header, transcript = done.out.split("\n", 1)  # several jobs: each named (issue 19)
        assert header == f"==> {good} <==" and f"==> {bad} <==" not in done.out, done.out
        assert_sample(transcript)
        assert "failed" in done.err and bad in done.err
        assert_one_error_line(done.err)
    done = cli.run("wait", "--json", good, bad)
    assert done.code == 3, done.err
    entries = json.loads(done.out)
    assert [e["id"] for e in entries] == [good, bad]
    assert entries[0]["error"] is None and entries[0]["segments"]
    assert entries[1]["status"] == "failed" and "failed" in entries[1]["error"]


# -- 4. last is the job the last command submitted or reused -----------------------------------


def test_wait_last_after_a_submit_that_reused_a_job(cli: Cli, tmp_path: Path) -> None:
    first = submit(cli, "--force", str(SAMPLE_MP3))
    time.sleep(1.1)  # created times have a resolution of 1 s: make "newest" unambiguous
    other = submit(cli, "--force", str(make_tone(tmp_path / "beep.wav", 0.5)))
    again = cli.run("submit", "-q", str(SAMPLE_MP3))
    assert again.code == 0 and again.out.strip() == first != other
    done = cli.run("wait", "last")
    assert done.code == 0, done.err
    assert_sample(done.out)
    assert json.loads(cli.run("status", "--json").out)["id"] == first
    assert json.loads(cli.run("jobs", "list", "--json").out)[0]["id"] in (first, other)


# -- 5. a saved job resumes at its own endpoint, with its profile's key -------------------------


def test_a_job_resumes_at_its_endpoint_with_its_profile(
    server: Any, tmp_path: Path, free_port: int
) -> None:
    cli = Cli(tmp_path / "cli")  # no WHISPERCLI_URL: the local default is a dead port
    cli.env["WHISPERCLI_LOCAL_PORT"] = str(free_port)
    cli.env["LAB_KEY"] = server.api_key
    assert cli.run("config", "set", "url", server.url, "--profile", "lab").code == 0
    assert cli.run("config", "set", "api_key_env", "LAB_KEY", "--profile", "lab").code == 0
    by_profile = cli.run("--profile", "lab", "submit", "-q", "--force", str(SAMPLE_MP3))
    assert by_profile.code == 0, by_profile.err
    job_id = by_profile.out.strip()
    assert saved_jobs(cli)[-1]["profile"] == "lab"
    done = cli.run("wait", "last")
    assert done.code == 0, done.err
    assert_sample(done.out)
    assert cli.run("status", "-q", job_id[:8]).out.strip() == "success"

    by_url = cli.run(
        "--url", server.url, "submit", "-q", "--force", str(SAMPLE_MP3),
        WHISPERCLI_API_KEY=server.api_key,
    )  # fmt: skip
    assert by_url.code == 0, by_url.err
    done = cli.run("wait", by_url.out.strip(), WHISPERCLI_API_KEY=server.api_key)
    assert done.code == 0, done.err

    elsewhere = cli.run("--url", f"http://127.0.0.1:{free_port}", "wait", "last")
    assert elsewhere.code == 2 and server.url in elsewhere.err
    assert_one_error_line(elsewhere.err)

    lab_only = json.loads(cli.run("jobs", "list", "--json", "--endpoint", "lab").out)
    assert [j["id"] for j in lab_only] == [job_id]
    at_url = json.loads(cli.run("jobs", "list", "--json", "--endpoint", server.url).out)
    assert {j["id"] for j in at_url} == {job_id, by_url.out.strip()}
    listed = cli.run("jobs", "list").out
    assert server.url in listed.splitlines()[0]

    (Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").write_text("")
    gone = cli.run("status", job_id)
    assert gone.code == 2 and "'lab', which is gone" in gone.err


# -- polish: the jobs commands ------------------------------------------------------------------


def test_jobs_list_on_a_terminal_and_jobs_show_of_a_deleted_job(cli: Cli, tmp_path: Path) -> None:
    odd = tmp_path / "two\nlines.mp3"
    odd.write_bytes(SAMPLE_MP3.read_bytes())
    named = submit(cli, "--force", str(odd))
    url = cli.run("upload", str(SAMPLE_MP3)).out.strip()
    assert "sig=" in url
    by_url = submit(cli, url)
    assert cli.run("wait", named, by_url).code == 0
    queued = submit(
        cli,
        "--force",
        "--speed",
        "accurate",
        "--no-vad-filter",
        str(make_tone(tmp_path / "t.wav", 60)),
    )
    try:
        code, shown = in_a_terminal(cli, "jobs", "list")
        assert code == 0, shown
        lines = shown.splitlines()
        assert lines[0].split() == ["ID", "STATUS", "MODEL", "CREATED", "ENDPOINT", "FILE"]
        assert lines[1].startswith(queued) and "*" in lines[1].split()[1]  # not final: stale
        assert "two\\nlines.mp3" in shown and "sig=" not in shown
        assert "sig=" not in cli.run("jobs", "list").out
        assert "ID\tSTATUS" not in cli.run("jobs", "list").out  # not a terminal: no header
    finally:
        cli.run("jobs", "cancel", queued)

    client = Client(url=cli.env["WHISPERCLI_URL"], api_key=cli.env["WHISPERCLI_API_KEY"])
    client.delete(named)
    shown = cli.run("jobs", "show", named)
    assert shown.code == 0, shown.err
    assert f"id: {named}" in shown.out and "no longer has" in shown.err
    body = json.loads(cli.run("jobs", "show", "--json", named).out)
    assert body["server"] is None and body["saved"]["id"] == named and "no longer" in body["note"]


def test_jobs_cancel_of_running_and_finished_jobs(cli: Cli, tmp_path: Path) -> None:
    done_id = submit(cli, "--force", str(SAMPLE_MP3))
    assert cli.run("wait", done_id).code == 0
    long_audio = make_tone(tmp_path / "long.wav", 90)
    running = submit(cli, "--force", "--speed", "accurate", "--no-vad-filter", str(long_audio))
    deadline = time.monotonic() + 30
    while cli.run("status", "-q", running).out.strip() != "processing":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    cancelled = cli.run("jobs", "cancel", running)
    assert cancelled.code == 0 and "cancel requested" in cancelled.err
    finished = cli.run("jobs", "cancel", done_id)
    assert finished.code == 0, finished.err
    said = finished.err.replace(done_id, "JOB")  # a job id may contain "409"
    assert "already success" in said and "409" not in said
    as_json = json.loads(cli.run("jobs", "cancel", "--json", done_id).out)
    assert as_json == [{"id": done_id, "status": "success", "result": as_json[0]["result"]}]
    assert cli.run("jobs", "cancel", "-q", done_id).err == ""
    assert set(cli.run("jobs", "list", "-q").out.split()) == {running, done_id}
    assert json.loads(cli.run("jobs", "rm", "--json", done_id).out) == {"removed": 1}


@pytest.mark.busy_server
def test_wait_several_timeout_or_ctrl_c_prints_one_resume_command(cli: Cli, tmp_path: Path) -> None:
    long_audio = make_tone(tmp_path / "long.wav", 90)
    ids = [
        submit(cli, "--force", "--speed", "accurate", "--no-vad-filter", str(long_audio))
        for _ in range(2)
    ]
    try:
        done = cli.run("wait", "--timeout", "1s", *ids)
        assert done.code == 7, done.err
        resume = [line for line in done.err.splitlines() if "whispercli wait" in line]
        assert len(resume) == 1 and all(i in resume[0] for i in ids), done.err
        assert "after 1 s" in done.err and "after 0" not in done.err  # was "after 1s"
        assert json.loads(cli.run("wait", "--json", "--timeout", "1", *ids).out)[1]["error"]
        proc = cli.start("--debug", "wait", *ids)
        out, err = interrupt_while_waiting(proc)
        assert proc.returncode == 130, err
        resume = [line for line in err.splitlines() if "whispercli wait" in line]
        assert len(resume) == 1 and all(i in resume[0] for i in ids), (out, err)
    finally:
        cli.run("jobs", "cancel", *ids)


@pytest.mark.busy_server
def test_transcribe_of_several_files_timing_out_prints_one_resume_command(
    cli: Cli, tmp_path: Path
) -> None:
    tones = [make_tone(tmp_path / f"long{n}.wav", 90 + n) for n in range(2)]
    done = cli.run(
        "transcribe", "--speed", "accurate", "--no-vad-filter", "--timeout", "0.5", *map(str, tones)
    )
    by_file = {job["file"]: job["id"] for job in saved_jobs(cli)}
    ids = [by_file[str(tone.resolve())] for tone in tones]  # in input order
    try:
        assert done.code == 7, done.err
        assert done.out == ""
        resume = [line for line in done.err.splitlines() if "whispercli wait" in line]
        hint = "whispercli: hint: the jobs keep running; resume with: whispercli wait"
        assert resume == [" ".join([hint, *ids])], done.err
        assert done.err.count("after 0.5 s") == 2, done.err
    finally:
        cli.run("jobs", "cancel", *ids)


def test_wait_in_a_terminal_names_the_file(cli: Cli) -> None:
    job_id = submit(cli, "--force", str(SAMPLE_MP3))
    code, shown = in_a_terminal(cli, "wait", job_id)
    assert code == 0, shown
    assert "sample.mp3" in shown


def test_the_display_leaves_no_spinner_behind() -> None:
    from whispercli.cli.progress import Display

    display = Display(enabled=True)
    with display:
        display.track("a.wav").message("accepted")
        display.track("b.wav").message("failed", done=False)
        spinner = display.progress.columns[0]
        assert all(str(spinner.render(t)).strip() for t in display.progress.tasks)
    assert all(str(spinner.render(t)).strip() == "" for t in display.progress.tasks)


# -- polish: server status, config repair, quiet output -----------------------------------------


@contextlib.contextmanager
def not_whispercli(port: int) -> Iterator[str]:
    """Some other HTTP server (a directory listing) on a loopback port."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    with serve_http(Quiet, port) as url:
        yield url


def test_server_status_honours_url_and_says_what_is_not_ours(
    server: Any, tmp_path: Path, free_port: int
) -> None:
    cli = Cli(tmp_path / "cli")
    cli.env["WHISPERCLI_LOCAL_PORT"] = str(free_port)
    done = cli.run("--url", server.url, "server", "status", WHISPERCLI_API_KEY=server.api_key)
    assert done.code == 0, done.err
    assert f"running at {server.url}" in done.out
    with not_whispercli(free_port) as other:
        done = cli.run("--url", other, "server", "status")
        assert done.code == 1 and "not as a whispercli server" in done.err
        assert_one_error_line(done.err)
    started = time.monotonic()
    done = cli.run("--profile", "tiyaro", "server", "status")
    assert done.code == 5 and "TIYARO_API_KEY" in done.err and "api.tiyaro.ai" in done.err
    done = cli.run("--profile", "tiyaro", "status", "0123456789abcdef0123456789abcdef")
    assert done.code == 5, done.err
    assert time.monotonic() - started < 2  # no network, no retries


def test_a_broken_config_is_shown_and_repaired(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli")
    assert cli.run("config", "set", "profile", "nosuch").code == 2
    config_file = Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml"
    config_file.write_text("[profiles.local]\nurl = 5\n")
    broken = cli.run("status", "0123456789abcdef0123456789abcdef")
    assert broken.code == 1
    assert str(config_file) in broken.err and "profiles.local.url must be a string" in broken.err
    shown = cli.run("config", "show")
    assert shown.code == 0 and "profiles.local.url" in shown.err
    assert json.loads(cli.run("config", "show", "--json").out)["error"]
    assert cli.run("config", "unset", "url").code == 0
    shown = cli.run("config", "show")
    assert shown.code == 0 and shown.err == ""
    import tomllib

    body = tomllib.loads(shown.out)  # values as TOML writes them
    assert body["url"] == "http://127.0.0.1:8642" and body["auto_start"] is True
    assert cli.run("config", "show", "-q").out == "http://127.0.0.1:8642\n"
    assert json.loads(cli.run("config", "path", "--json").out) == {"config_file": str(config_file)}


# -- issue 19: what a new user hit ------------------------------------------------------------

SLOW_JOB_SECONDS = 3.0


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The fake engine at SLOW_JOB_SECONDS a job (one at a time): long enough to catch a job
    pending or running, short enough to let it finish. For tests where the transcript's words
    do not matter (the fake says "The fake engine heard this." ten times)."""
    # one job at a time: the next one is seen pending
    yield from serve_module(tmp_path_factory, "--engine-jobs", "1", fake_engine=SLOW_JOB_SECONDS)


def _server_status(handle: Server, job_id: str) -> str | None:
    jobs = list_jobs(handle.url, handle.headers)
    return next((j["status"] for j in jobs if j["id"] == job_id), None)


def _server_jobs(handle: Server) -> set[str]:
    return {job["id"] for job in list_jobs(handle.url, handle.headers)}


def test_ctrl_c_in_transcribe_o_prints_the_command_that_finishes_it(
    slow_server: Server, tmp_path: Path
) -> None:
    """Item 6: not `wait ID...` (which writes no files) but the same transcribe with
    --skip-existing, which reuses the running jobs; "the jobs" when there are several."""
    cli = Cli(tmp_path / "cli", slow_server)
    inputs = [make_tone(tmp_path / "in" / "a.wav"), make_tone(tmp_path / "in" / "b.wav", 0.6)]
    out = tmp_path / "out dir"
    args = ["transcribe", *map(str, inputs), "-o", str(out), "-f", "txt", "--force"]
    proc = cli.start(*args)
    try:
        deadline = time.monotonic() + 60
        while not (cli.jobs_file.exists() and len(saved_jobs(cli)) == 2):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    [said] = [line for line in err.splitlines() if "Resume with:" in line]
    assert "the jobs keep running" in said, said
    command = shlex.split(said.split("Resume with: ", 1)[1])
    assert command[:2] == ["whispercli", "transcribe"] and "--skip-existing" in command
    assert "--force" not in command and str(out) in command
    before = _server_jobs(slow_server)
    done = cli.run(*command[1:])  # the command as printed
    assert done.code == 0, done.err
    assert sorted(p.name for p in out.iterdir()) == ["a.txt", "b.txt"]
    assert "fake engine heard this" in (out / "a.txt").read_text()
    assert _server_jobs(slow_server) == before  # the running jobs were reused


def test_terminal_lines_keep_their_columns_and_a_resumed_wait_its_clock(
    slow_server: Server, tmp_path: Path
) -> None:
    """Polish: the percent does not move when "pending" becomes "processing"; `wait` counts
    from when the job was accepted, not from when the wait began."""
    cli = Cli(tmp_path / "cli", slow_server)
    tones = [str(make_tone(tmp_path / f"{n}.wav", 0.5 + n / 10)) for n in range(2)]
    code, shown = in_a_terminal(cli, "transcribe", *tones, "-j", "2", "--force")
    assert code == 0, shown
    assert "pending      0%" in shown, shown  # padded to "processing"
    job_id = submit(cli, "--force", tones[0])
    time.sleep(SLOW_JOB_SECONDS - 1)
    code, shown = in_a_terminal(cli, "wait", job_id)
    assert code == 0, shown
    times = re.findall(r"\b0:00:(\d\d)\b", re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", shown))
    assert times and int(times[-1]) >= SLOW_JOB_SECONDS - 1, shown


def test_jobs_commands_say_what_they_did(slow_server: Server, tmp_path: Path) -> None:
    """Polish: `jobs show` options as JSON; `jobs rm --purge` says it deleted the job on the
    server; `jobs list --endpoint nope` says nothing matched; `--remote` and `models list`
    have headers on a terminal, and the remote list the saved list's time format."""
    cli = Cli(tmp_path / "cli", slow_server)
    job_id = submit(cli, "--force", "-l", "en", "--beam-size", "2", str(SAMPLE_MP3))
    shown = cli.run("jobs", "show", job_id).out
    assert 'options: {"language": "en", "beam_size": 2}' in shown, shown
    nothing = cli.run("jobs", "list", "--endpoint", "nope")
    assert nothing.code == 0 and nothing.out == ""
    assert "no saved job matches --endpoint nope" in nothing.err and slow_server.url in nothing.err
    code, listed = in_a_terminal(cli, "jobs", "list", "--remote")
    assert code == 0 and listed.splitlines()[0].split() == ["ID", "STATUS", "MODEL", "CREATED"]
    row = next(line for line in listed.splitlines() if line.startswith(job_id))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row.split()[-1]), row
    code, models = in_a_terminal(cli, "models", "list")
    assert code == 0 and models.splitlines()[0].split() == ["NAME", "LOADED"], models
    assert cli.run("wait", job_id).code == 0  # the server deletes only a job that ended
    purged = cli.run("jobs", "rm", "--purge", job_id)
    assert purged.code == 0, purged.err
    assert f"{job_id}: deleted on the server at {slow_server.url}" in purged.err
    assert "forgot 1 job(s) here" in purged.err
    assert job_id not in _server_jobs(slow_server)


def test_prune_asks_about_jobs_last_seen_unfinished(slow_server: Server, tmp_path: Path) -> None:
    """Polish: a job last seen pending that has finished since is pruned (its server is asked
    first); one its server no longer has is pruned too; one whose server does not answer
    stays."""
    from whispercli.state import JobStore, SavedJob

    cli = Cli(tmp_path / "cli", slow_server)
    finished, deleted = (submit(cli, "--force", str(SAMPLE_MP3)) for _ in range(2))
    requests.delete(
        f"{slow_server.url}/v1/async/jobs/{deleted}", headers=slow_server.headers, timeout=10
    ).raise_for_status()
    JobStore(cli.jobs_file).add(
        SavedJob(id="a" * 32, endpoint="http://127.0.0.1:9", status="pending")
    )
    assert all(s["status"] != "success" for s in saved_jobs(cli))  # last seen: not finished
    deadline = time.monotonic() + 60  # the server finishes the first (the other is deleted)
    while _server_status(slow_server, finished) != "success":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    pruned = cli.run("jobs", "prune")
    assert pruned.code == 0, pruned.err
    assert "pruned 2 finished job(s) (1 no longer on their server)" in pruned.err, pruned.err
    assert "kept 1 unfinished job(s) whose server did not answer" in pruned.err
    assert [s["id"] for s in saved_jobs(cli)] == ["a" * 32]
    assert finished not in cli.run("jobs", "list", "-q").out
