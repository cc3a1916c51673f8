"""Hostile input through the real server and the CLI: audio that is not audio, 6 h of silence,
path-like and unicode file names, job ids that are SQL or path fragments, and schemathesis
over the OpenAPI schema. Each must end in a clear 4xx / a clear one-line CLI error (or a job
that fails with a reason), never a traceback, and nothing may be written outside the sandbox.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from support.audio import hostile_files, silence_mp3
from support.cli import Cli
from support.figures import bump, record
from support.samples import SAMPLE_MP3, assert_sample
from support.sandbox import Sandbox, run_cli
from support.servers import BOTH_BACKENDS, Server

from whispercli.server.engine.fake import TEXT as FAKE_TEXT
from whispercli.server.engine.fake import TICKS as FAKE_TICKS

pytestmark = pytest.mark.reliability

ID_FRAGMENTS = [
    "' OR 1=1 --",
    "1; DROP TABLE jobs; --",
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e",
    "..",
    "abc\x00def",
    "$(touch pwned)",
    "a" * 5000,
    "🦜🦜🦜🦜🦜🦜🦜🦜",
    "last'--",
]


def _snapshot(root: Path, server: Server) -> set[str]:
    """Every path under ``root`` and the server's sandbox: the test's own tmp tree (the CLI's
    sandbox with its private TMPDIR, the working directory the CLI runs in and its parents up
    to the tree's top, where a path that climbs out would land) and the server's dirs, log and
    private TMPDIR. Nothing else is watched: other processes' files (a compiler's in /tmp) are
    not ours."""
    seen: set[str] = set()
    for top in (root, server.sandbox.root):
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                seen.add(os.path.join(dirpath, name))
    return seen


def _outside_data(paths: set[str], sandbox: Sandbox, server: Server, *allowed: Path) -> set[str]:
    """What appeared outside the CLI's data and state dirs and TMPDIR, the server's data dir,
    log and TMPDIR, and ``allowed``."""
    box = server.sandbox
    kept = (sandbox.data_dir, sandbox.state_dir, sandbox.tmp_dir, server.data_dir, box.tmp_dir)
    logs = [server.log_path] + ([server.worker.log_path] if server.worker else [])
    keep = tuple(str(a) for a in (*kept, *logs, *allowed))
    return {p for p in paths if not p.startswith(keep)}


def _one_clear_line(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert 1 <= len(lines) <= 3, f"expected one error line (and a hint): {stderr!r}"
    assert lines[0].startswith("whispercli: error:"), stderr
    assert "unexpected" not in lines[0].lower(), f"an unhandled exception leaked: {stderr!r}"


# -- audio that is not (quite) audio ---------------------------------------------------------------


def test_bad_audio_fails_the_job_with_a_reason(
    live_server: Server, sandbox: Sandbox, tmp_path: Path
) -> None:
    files = hostile_files(tmp_path / "bad")
    outcomes = {}
    for name, path in files.items():
        result = run_cli(sandbox, "transcribe", str(path), timeout=120)
        bump("hostile", "audio_files")
        outcomes[name] = (result.returncode, result.stderr.strip().splitlines()[:1])
        # an empty file is refused before anything is sent (a usage error); the rest fail
        expected = (2,) if path.stat().st_size == 0 else (1, 3)
        assert result.returncode in expected, f"{name}: exit {result.returncode}: {result.stderr}"
        _one_clear_line(result.stderr)
        assert result.stdout.strip() == "", f"{name}: printed a transcript: {result.stdout!r}"
    record(
        "hostile: bad audio",
        **{k: f"exit {v[0]}: {v[1][0] if v[1] else ''}" for k, v in outcomes.items()},
    )
    health = requests.get(sandbox.url + "/v1/health", headers=sandbox.auth(), timeout=5)
    assert health.status_code == 200, "the server stopped serving after bad input"
    # ... and it still transcribes real speech.
    ok = run_cli(sandbox, "transcribe", str(SAMPLE_MP3), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert_sample(ok.stdout)


def test_six_hours_of_silence_is_bounded(
    live_server: Server, sandbox: Sandbox, tmp_path: Path
) -> None:
    """Six hours of silence must finish quickly or be cancellable; the server stays responsive."""
    silence = silence_mp3(tmp_path / "silence-6h.mp3", hours=6)
    bump("hostile", "audio_files")
    submitted = run_cli(sandbox, "submit", "-q", str(silence), timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    started = time.monotonic()
    waited = run_cli(sandbox, "wait", job_id, "--timeout", "10", timeout=60)
    poll_ms = []
    for _ in range(5):
        t = time.perf_counter()
        r = requests.get(sandbox.url + "/v1/health", headers=sandbox.auth(), timeout=5)
        poll_ms.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200
    cancelled = None
    if waited.returncode != 0:
        assert waited.returncode == 7, waited.stderr  # timed out waiting: the job keeps running
        _one_clear_line(waited.stderr)
        cancelled = run_cli(sandbox, "jobs", "cancel", job_id, timeout=60)
        assert cancelled.returncode == 0, cancelled.stderr
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        jobs = requests.get(
            sandbox.url + "/v1/async/jobs", headers=sandbox.auth(), timeout=5
        ).json()["jobs"]
        status = next(j["status"] for j in jobs if j["id"] == job_id)
        if status in ("success", "failed", "cancelled"):
            break
        time.sleep(0.2)
    record(
        "hostile: 6 h of silence",
        size_bytes=silence.stat().st_size,
        outcome=status,
        wait_exit=waited.returncode,
        cancelled=cancelled is not None,
        seconds_to_end=round(time.monotonic() - started, 1),
        health_ms_max_while_running=round(max(poll_ms), 1),
    )
    assert status in ("success", "cancelled", "failed"), f"the job is still {status}"
    assert max(poll_ms) < 1000, f"the server was unresponsive: {poll_ms}"
    ok = run_cli(sandbox, "transcribe", str(SAMPLE_MP3), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert_sample(ok.stdout)


# -- file names ------------------------------------------------------------------------------------

NAMES = [
    "with space.mp3",
    "ünïcödé-名前.mp3",
    "emoji-🦜.mp3",
    "new\nline.mp3",
    "-dash-first.mp3",
    "quote'\"semi;colon.mp3",
    "%2e%2e%2fescape.mp3",
    "$(touch pwned).mp3",
]


@pytest.mark.fake_engine(0.1)  # what is under test is where files go, not the words in them
def test_path_like_and_unicode_file_names(
    live_server: Server, sandbox: Sandbox, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    deep = work / "a" / "b"
    deep.mkdir(parents=True)
    out = work / "out"  # in the watched tree, as are out/.. and out/../.. and cwd/../..
    (work / "x.mp3").write_bytes(SAMPLE_MP3.read_bytes())
    args = ["../../x.mp3"]  # a path that climbs out of the working directory
    for i, name in enumerate(NAMES):
        # distinct bytes per file so none is answered from the reuse-by-hash cache
        (deep / name).write_bytes(SAMPLE_MP3.read_bytes() + b"TAG" + f"{i}".ljust(125).encode())
        args.append(name if not name.startswith("-") else f"./{name}")
    before = _snapshot(tmp_path, live_server)
    result = run_cli(
        sandbox, "transcribe", "-f", "txt", "-o", str(out), "--force", *args, cwd=deep, timeout=240
    )
    after = _snapshot(tmp_path, live_server)
    bump("hostile", "file_names", len(args))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    written = sorted(p.name for p in out.iterdir())
    expected = sorted(["x.txt"] + [Path(n).stem + ".txt" for n in NAMES])
    assert written == expected, f"outputs {written} != {expected}"
    for path in out.iterdir():  # each the whole transcript of its job
        assert path.read_text().split() == (FAKE_TEXT * FAKE_TICKS).split(), path
    new = _outside_data(after - before, sandbox, live_server, out)
    assert not new, f"files appeared outside the data dir and -o: {sorted(new)}"
    assert not Path("pwned").exists() and not (deep / "pwned").exists()


# -- job ids that are SQL or path fragments ------------------------------------------------------


@BOTH_BACKENDS
def test_hostile_job_ids_over_http(live_server: Server, sandbox: Sandbox, tmp_path: Path) -> None:
    before = _snapshot(tmp_path, live_server)
    passwd = Path("/etc/passwd").read_bytes()
    statuses = {}
    for fragment in ID_FRAGMENTS:
        quoted = quote(fragment, safe="")
        for method, path in (
            ("GET", f"/v1/async/jobs/{quoted}"),
            ("GET", f"/v1/async/jobs/{quoted}?wait=1"),
            ("DELETE", f"/v1/async/jobs/{quoted}"),
            ("POST", f"/v1/async/jobs/{quoted}/cancel"),
            ("PUT", f"/v1/input/uploads/{quoted}?expires=9999999999&sig=00"),
            ("GET", f"/v1/async/jobs?status={quoted}"),
            ("POST", f"/v1/input/upload-url?extension={quoted}"),
            ("GET", f"/v2/audio/speech_to_text_async/{quoted}"),
            ("GET", f"/v2/audio/speech_to_text_async/{quoted}/"),
            ("GET", f"/v1/octoai/requests/{quoted}"),
            ("GET", f"/v1/octoai/requests/{quoted}/response"),
        ):
            r = requests.request(
                method, sandbox.url + path, headers=sandbox.auth(), data=b"x", timeout=10
            )
            bump("hostile", "http_requests")
            statuses[f"{method} {path[:60]}"] = r.status_code
            assert 400 <= r.status_code < 500, f"{method} {path!r} -> {r.status_code} {r.text}"
            body = r.json()
            message = body.get("error", {}).get("message") or body.get("detail")
            message = message or body.get("details")  # Eden's 404: {"details": "Not Found"}
            assert message, f"{method} {path!r}: no error message in {body}"
    record(
        "hostile: job ids over HTTP", requests=len(statuses), codes=sorted(set(statuses.values()))
    )
    after = _snapshot(tmp_path, live_server)
    assert not _outside_data(after - before, sandbox, live_server)
    assert Path("/etc/passwd").read_bytes() == passwd


def test_hostile_job_ids_through_the_cli(
    live_server: Server, sandbox: Sandbox, tmp_path: Path
) -> None:
    before = _snapshot(tmp_path, live_server)
    commands = (
        ["status"],
        ["wait", "--timeout", "5"],
        ["jobs", "show"],
        ["jobs", "cancel"],
        ["jobs", "rm"],
    )
    cases = [
        (command, fragment)
        for fragment in ID_FRAGMENTS
        if "\x00" not in fragment  # argv cannot carry NUL
        for command in commands
    ]
    # In-process (main(), as the console script runs it), in the sandbox's dirs: what is under
    # test is each command's answer to the id, not process start-up, 55 times over.
    cli = Cli(sandbox.root, live_server)
    results = [cli.run(*command, "--", fragment) for command, fragment in cases]
    bump("hostile", "cli_job_ids", len(cases))
    for (command, fragment), result in zip(cases, results, strict=True):
        assert result.code in (2, 4), f"{command} {fragment!r}: {result.code} {result.err}"
        assert "Traceback" not in result.err, result.err
        assert len(result.err.strip().splitlines()) <= 3, result.err
    after = _snapshot(tmp_path, live_server)
    assert not _outside_data(after - before, sandbox, live_server)


def test_non_ascii_signature_is_403_not_500(live_server: Server, sandbox: Sandbox) -> None:
    r = requests.post(sandbox.url + "/v1/input/upload-url", headers=sandbox.auth(), timeout=5)
    put_url = r.json()["uploadUrl"]["PUT"].split("?")[0]
    for query in ("expires=9999999999&sig=%C3%B5%C3%98", "expires=%D9%A1&sig=ab"):
        bump("hostile", "http_requests")
        resp = requests.put(f"{put_url}?{query}", data=b"abc", timeout=5)
        assert resp.status_code == 403, f"{query}: {resp.status_code} {resp.text}"


# -- schemathesis --------------------------------------------------------------------------------


@BOTH_BACKENDS
def test_schemathesis_over_openapi(live_server: Server, sandbox: Sandbox, tmp_path: Path) -> None:
    """Bounded property-based run over every documented operation, with the Bearer key:
    no 5xx, and no operation that ignores auth. The upload PUT is left to the tests above:
    its documented Content-Length header makes the generator send lengths that do not
    match the body, and the server then (rightly) waits for bytes that never come."""
    done = subprocess.run(
        [
            "schemathesis", "run", sandbox.url + "/openapi.json",
            "-H", f"Authorization: Bearer {sandbox.key()}",
            "--checks", "not_a_server_error,ignored_auth",
            "--max-examples", "25", "--max-time", "10", "--request-timeout", "10",
            "--phases", "examples,coverage,fuzzing", "--generation-database", "none",
            "--exclude-path-regex", "^/v1/input/uploads/", "--seed", "5",
            "--no-color", "--output-sanitize", "true",
        ],
        capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )  # fmt: skip
    generated = re.search(r"(\d+) generated", done.stdout)
    record(
        "hostile: schemathesis",
        cases=int(generated.group(1)) if generated else None,
        exit_code=done.returncode,
    )
    if generated:
        bump("fuzz", "schemathesis_cases", int(generated.group(1)))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert sandbox.key() not in done.stdout, "the key was printed"
