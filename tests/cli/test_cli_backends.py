"""The Eden AI and OctoAI backends through the real CLI, against loopback fakes that follow
each vendor's documented shapes (issue 12): several Eden vendors at once, one failing, two
speakers; OctoAI's inline base64 predict, poll and response; verbs a protocol lacks exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_vendors import EDEN_BASE, KEY, Fake, serve
from support.cli import Cli, assert_one_error_line
from support.samples import SAMPLE_MP3

from whispercli.state import SavedJob


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither fake long-polls: poll every 50 ms instead of from 1 s."""
    import whispercli.client as client

    monkeypatch.setattr(client, "POLL_START", 0.05)


@pytest.fixture
def fake() -> Iterator[Fake]:
    with serve() as running:
        yield running


@pytest.fixture
def vendor_cli(tmp_path: Path, fake: Fake) -> Cli:
    cli = Cli(tmp_path / "cli")
    config = Path(cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml"
    config.write_text(
        f"""
[profiles.eden]
url = "{fake.url}/v2"
backend = "edenai"
api_key = "{KEY}"
providers = "amazon,google"

[profiles.octo]
url = "{fake.url}"
backend = "octoai"
api_key = "{KEY}"
"""
    )
    return cli


def _eden(vendor_cli: Cli, *args: str) -> tuple[int, str, str]:
    done = vendor_cli.run("--profile", "eden", *args)
    return done.code, done.out, done.err


# -- Eden AI --------------------------------------------------------------------------------


def test_eden_transcribe_writes_speaker_labels_in_every_format(
    vendor_cli: Cli, fake: Fake, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, _, err = _eden(vendor_cli, "transcribe", str(SAMPLE_MP3), "-o", str(out), "-l", "en")
    assert code == 0, err
    [launch] = fake.launches
    assert launch["providers"] == "amazon,google"  # the profile's providers
    assert launch["language"] == "en"
    assert launch["file"] == SAMPLE_MP3.read_bytes()  # the multipart upload, whole
    [post] = [r for r in fake.requests if r[0] == "POST"]  # sent once, not retried
    assert post[1] == EDEN_BASE + "/" and post[2]["Content-Type"].startswith("multipart/")
    srt = (out / "sample.srt").read_text()
    assert "[SPEAKER 1] Hello there. How are you?" in srt
    assert "00:00:02,500 --> 00:00:03,500\n[SPEAKER 2] Fine, thanks." in srt
    vtt = (out / "sample.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "[SPEAKER 2] Fine, thanks." in vtt
    assert (out / "sample.txt").read_text() == (
        "[SPEAKER 1] Hello there. How are you?\n[SPEAKER 2] Fine, thanks.\n"
    )
    tsv = (out / "sample.tsv").read_text().splitlines()
    assert tsv[0] == "start\tend\tspeaker\ttext" and tsv[2] == "2500\t3500\t2\tFine, thanks."
    data = json.loads((out / "sample.json").read_text())
    assert [s["speaker"] for s in data["segments"]] == [1, 2]
    assert data["provider"] == "amazon" and data["results"]["google"]["error"]


def test_eden_json_shows_every_vendor_and_text_takes_the_first(vendor_cli: Cli, fake: Fake) -> None:
    code, out, err = _eden(
        vendor_cli, "transcribe", "--json", "--provider", "google,deepgram", "--provider", "amazon",
        str(SAMPLE_MP3),
    )  # fmt: skip
    assert code == 0, err
    [entry] = json.loads(out)
    results = entry["result"]["results"]
    assert list(results) == ["google", "deepgram", "amazon"]
    assert results["google"]["error"] == "google: quota exceeded"
    assert results["amazon"]["speakers"] == 2 and results["deepgram"]["speakers"] == 1
    assert entry["result"]["provider"] == "deepgram"  # the first that succeeded
    assert fake.launches[0]["providers"] == "google,deepgram,amazon"
    # One speaker: no labels, and tsv keeps whisper's three columns.
    code, out, err = _eden(vendor_cli, "wait", "last", "-f", "tsv")
    assert code == 0, err
    assert out.startswith("start\tend\ttext\n") and "[SPEAKER" not in out
    code, out, err = _eden(vendor_cli, "wait", "last", "--provider", "amazon")
    assert code == 0, err
    assert out.startswith("[SPEAKER 1] Hello there.")


def test_eden_submit_wait_status_list_cancel_and_delete(vendor_cli: Cli, fake: Fake) -> None:
    code, job_id, err = _eden(vendor_cli, "submit", "-q", str(SAMPLE_MP3))
    job_id = job_id.strip()
    assert code == 0 and job_id in fake.jobs, err
    saved = json.loads(vendor_cli.jobs_file.read_text())
    assert saved["version"] == 3
    assert saved["jobs"][-1]["backend"] == "edenai"
    assert saved["jobs"][-1]["options"] == {"providers": ["amazon", "google"]}

    code, out, _ = _eden(vendor_cli, "status", "-q")
    assert (code, out.strip()) == (0, "processing")
    code, out, _ = _eden(vendor_cli, "jobs", "list", "--remote", "-q")
    assert (code, out.split()) == (0, [job_id])
    # Eden cannot cancel: exit 2 with a hint, before any request.
    before = len(fake.requests)
    done = vendor_cli.run("--profile", "eden", "jobs", "cancel", "last")
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert "Eden AI cannot cancel a job" in done.err and "hint:" in done.err
    assert len(fake.requests) == before
    # Deleting a job that still runs is refused (Eden deletes finished jobs in bulk).
    done = vendor_cli.run("--profile", "eden", "jobs", "rm", "--purge", "last")
    assert done.code == 2 and "still processing" in done.err, done.err
    assert fake.deletes == 0

    # Resumed without --profile: the saved job knows its profile and backend.
    done = vendor_cli.run("wait", "last")
    assert done.code == 0, done.err
    assert done.out.startswith("[SPEAKER 1] Hello there. How are you?\n")
    code, out, _ = _eden(vendor_cli, "status", "--json", job_id)
    assert code == 0 and json.loads(out)["status"] == "success"
    listed = json.loads(vendor_cli.run("jobs", "list", "--json").out)
    assert [(j["id"], j["backend"], j["status"]) for j in listed] == [(job_id, "edenai", "success")]
    done = vendor_cli.run("jobs", "rm", "--purge", job_id)
    assert done.code == 0, done.err
    assert fake.deletes == 1 and job_id not in fake.jobs
    assert next(r for r in fake.requests if r[0] == "DELETE")[1] == EDEN_BASE + "/"


def test_eden_job_whose_vendors_all_fail_exits_3(vendor_cli: Cli) -> None:
    code, out, err = _eden(vendor_cli, "transcribe", "--provider", "google", str(SAMPLE_MP3))
    assert code == 3 and out == "", err
    assert_one_error_line(err)
    assert "google: quota exceeded" in err


def test_eden_error_shapes_are_readable(vendor_cli: Cli, fake: Fake) -> None:
    code, _, err = _eden(vendor_cli, "submit", "--provider", "nuance", str(SAMPLE_MP3))
    assert code == 1, err
    assert_one_error_line(err)
    assert "providers: Invalid provider: 'nuance' (HTTP 400)" in err
    code, _, err = _eden(vendor_cli, "status", "0" * 8 + "-0000-0000-0000-" + "0" * 12)
    assert code == 4 and "Not Found" in err, err


def test_eden_without_vendors_or_with_a_whisper_only_option_exits_2(
    vendor_cli: Cli, fake: Fake
) -> None:
    assert vendor_cli.run("config", "unset", "providers", "--profile", "eden").code == 0
    code, _, err = _eden(vendor_cli, "submit", str(SAMPLE_MP3))
    assert code == 2 and "--provider deepgram" in err, err
    code, _, err = _eden(
        vendor_cli, "submit", "--provider", "amazon", "--beam-size", "3", str(SAMPLE_MP3)
    )
    assert code == 2 and "Eden AI cannot take --beam-size" in err, err
    assert fake.launches == []


def test_eden_url_input_is_sent_as_file_url(vendor_cli: Cli, fake: Fake) -> None:
    code, _, err = _eden(vendor_cli, "submit", "-q", "https://media.example/talk.mp3")
    assert code == 0, err
    assert fake.launches == [
        {"providers": "amazon,google", "file_url": "https://media.example/talk.mp3"}
    ]


# -- OctoAI ---------------------------------------------------------------------------------


def test_octoai_transcribe_submit_wait_and_status(vendor_cli: Cli, fake: Fake) -> None:
    done = vendor_cli.run("--profile", "octo", "transcribe", "-l", "en", str(SAMPLE_MP3))
    assert done.code == 0, done.err
    assert done.out == "octo hears you\n"
    [predict] = fake.predicts
    assert predict == {"audio": SAMPLE_MP3.read_bytes(), "language": "en"}
    headers = next(r[2] for r in fake.requests if r[0] == "POST")
    assert headers["X-OctoAI-Async"] == "1" and r"/predict" in fake.requests[0][1]

    job_id = vendor_cli.run("--profile", "octo", "submit", "-q", str(SAMPLE_MP3)).out.strip()
    assert job_id in fake.jobs
    assert vendor_cli.run("status", "-q", job_id).out.strip() == "pending"
    done = vendor_cli.run("wait", "last", "-f", "srt")
    assert done.code == 0, done.err
    assert done.out.startswith("1\n00:00:00,000 --> 00:00:01,500\nocto hears you")
    assert json.loads(vendor_cli.jobs_file.read_text())["jobs"][-1]["backend"] == "octoai"


def test_octoai_failed_job_exits_3(vendor_cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"FAIL" + b"\0" * 100)
    done = vendor_cli.run("--profile", "octo", "transcribe", str(bad))
    assert done.code == 3, done.err
    assert_one_error_line(done.err)
    # The reason once: not "failed: the job failed: ...", nor the HTTP status that carried it.
    assert done.err.splitlines()[0].endswith(" failed: bad audio"), done.err
    assert "the job failed" not in done.err and "HTTP 422" not in done.err


def test_octoai_verbs_it_lacks_exit_2_with_a_hint(vendor_cli: Cli, fake: Fake) -> None:
    job_id = vendor_cli.run("--profile", "octo", "submit", "-q", str(SAMPLE_MP3)).out.strip()
    before = len(fake.requests)
    for args, said in (
        (("jobs", "cancel", job_id), "OctoAI cannot cancel a job"),
        (("jobs", "list", "--remote"), "OctoAI cannot list its jobs"),
        (("jobs", "rm", "--purge", job_id), "OctoAI cannot delete a job"),
        (("upload", str(SAMPLE_MP3)), "OctoAI cannot take an upload on its own"),
        (("submit", "--provider", "amazon", str(SAMPLE_MP3)), "OctoAI cannot pick vendors"),
    ):
        done = vendor_cli.run("--profile", "octo", *args)
        assert done.code == 2, (args, done.err)
        assert_one_error_line(done.err)
        assert said in done.err and "hint:" in done.err, done.err
    assert len(fake.requests) == before  # refused before any request


def test_octoai_caps_the_inline_body(
    vendor_cli: Cli, fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whispercli.backends import octoai

    monkeypatch.setattr(octoai, "MAX_AUDIO_BYTES", 1024)
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * 2048)
    done = vendor_cli.run("--profile", "octo", "submit", str(big))
    assert done.code == 2, done.err
    assert "base64" in done.err and "hint:" in done.err
    assert fake.predicts == []


# -- the seam's edges -----------------------------------------------------------------------


def test_provider_on_a_tiyaro_profile_exits_2(vendor_cli: Cli) -> None:
    done = vendor_cli.run(
        "--url", "http://127.0.0.1:9", "--api-key", "k", "submit", "--provider", "amazon",
        str(SAMPLE_MP3),
    )  # fmt: skip
    assert done.code == 2, done.err
    assert "Tiyaro cannot pick vendors" in done.err and "backend = edenai" in done.err


def test_profile_backend_is_checked(vendor_cli: Cli) -> None:
    done = vendor_cli.run("config", "set", "backend", "whisperx", "--profile", "eden")
    assert done.code == 2 and "edenai, octoai" in done.err, done.err
    config = Path(vendor_cli.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml"
    config.write_text('[profiles.bad]\nurl = "http://h:1"\nbackend = "whisperx"\n')
    done = vendor_cli.run("--profile", "bad", "status")
    assert done.code == 1, done.err
    assert "profiles.bad.backend is 'whisperx'" in done.err


def test_builtin_edenai_profile(vendor_cli: Cli) -> None:
    done = vendor_cli.run("--profile", "edenai", "config", "show", "--json", EDENAI_API_KEY="ek")
    assert done.code == 0, done.err
    shown = json.loads(done.out)
    assert shown["url"] == "https://api.edenai.run/v2" and shown["backend"] == "edenai"
    assert shown["key_source"] == "EDENAI_API_KEY"


def test_a_saved_job_of_an_unknown_backend_is_refused(vendor_cli: Cli) -> None:
    from whispercli.state import JobStore

    store = JobStore(vendor_cli.jobs_file)
    store.add(SavedJob(id="f" * 32, endpoint="http://127.0.0.1:9", backend="future"))
    done = vendor_cli.run("status", "last")
    assert done.code == 2 and "backend 'future'" in done.err, done.err


# -- issue 19 --------------------------------------------------------------------------------


def test_a_model_flag_is_refused_where_the_protocol_cannot_carry_it(
    vendor_cli: Cli, fake: Fake
) -> None:
    """Item 3: Eden's own vendors (amazon, google) pick their models, and an OctoAI endpoint
    serves one: -m is exit 2 before any request, not silently dropped."""
    code, _, err = _eden(vendor_cli, "transcribe", "-m", "small", str(SAMPLE_MP3))
    assert code == 2, err
    assert_one_error_line(err)
    assert "'amazon' cannot take a model" in err and "whisper/NAME" in err
    done = vendor_cli.run("--profile", "octo", "transcribe", "-m", "small", str(SAMPLE_MP3))
    assert done.code == 2, done.err
    assert "OctoAI cannot pick a model (-m small" in done.err
    assert fake.launches == [] and fake.predicts == [] and not vendor_cli.jobs_file.exists()


def test_the_builtin_edenai_profile_asks_for_its_key_first(vendor_cli: Cli, fake: Fake) -> None:
    """Item 11: without EDENAI_API_KEY the key is the first complaint; the hints name the
    real profile. Nothing is sent (the built-in profile points at api.edenai.run)."""
    done = vendor_cli.run("--profile", "edenai", "transcribe", str(SAMPLE_MP3))
    assert done.code == 5, done.err
    assert_one_error_line(done.err)
    assert "no API key for profile 'edenai'" in done.err and "vendors" not in done.err
    assert "EDENAI_API_KEY" in done.err and "--profile edenai" in done.err
    done = vendor_cli.run("--profile", "edenai", "transcribe", str(SAMPLE_MP3), EDENAI_API_KEY="k")
    assert done.code == 2, done.err
    assert "vendors you pick" in done.err and "--profile edenai" in done.err
    assert "PROFILE" not in done.err
