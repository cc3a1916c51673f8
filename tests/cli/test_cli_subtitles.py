"""Subtitle options and --hotwords through the real CLI against a real server (issue 19).

The writers' byte-identity with openai-whisper is tested in tests/unit/test_formats_reference.py;
here each option goes through `transcribe` (or `wait`) to a real decode with word timings, and
the cues printed are checked for the shape asked for and against the job's own result.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import srt
import webvtt
from support.cli import Cli, assert_one_error_line
from support.samples import SAMPLE_MP3, assert_sample

import whispercli.formats as formats
from whispercli.protocol import Result


@pytest.fixture(scope="module")
def shared_cli(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """One jobs file for the module: the sample is decoded with word timings once, and every
    later subtitle option reuses that job (as a user re-cutting the same subtitles would)."""
    return Cli(tmp_path_factory.mktemp("cli"), server)


def saved_jobs(shared_cli: Cli) -> list[dict[str, Any]]:
    return json.loads(shared_cli.jobs_file.read_text())["jobs"]


def job_result(shared_cli: Cli, job_id: str) -> Result:
    done = shared_cli.run("wait", "--json", job_id)
    assert done.code == 0, done.err
    [entry] = json.loads(done.out)
    return Result.from_dict(entry)


def transcribe(shared_cli: Cli, *args: str) -> tuple[str, Result]:
    """`transcribe SAMPLE args`: stdout, and the result of the job it ran (or reused)."""
    done = shared_cli.run("transcribe", str(SAMPLE_MP3), *args)
    assert done.code == 0, done.err
    job = shared_cli.run("status", "--json", "last")
    result = job_result(shared_cli, json.loads(job.out)["id"])
    assert formats.has_words(result), "the subtitle options asked for word timings"
    return done.out, result


def spoken(result: Result) -> list[str]:
    return [str(w["word"]).strip() for s in result.segments for w in s.extra["words"]]


def test_max_line_width_wraps_lines_at_that_width(shared_cli: Cli) -> None:
    out, result = transcribe(shared_cli, "-f", "srt", "--max-line-width", "16")
    assert saved_jobs(shared_cli)[-1]["options"]["word_timestamps"] is True
    assert out == formats.render(result, "srt", formats.SubtitleOptions(16))
    cues = list(srt.parse(out))
    lines = [line for cue in cues for line in cue.content.split("\n")]
    assert len(lines) > len(cues)  # some cue wraps
    assert all(len(line) <= 16 or " " not in line for line in lines), lines
    assert " ".join(lines).split() == spoken(result)
    assert_sample(" ".join(lines))


def test_max_line_count_caps_the_lines_of_a_cue(shared_cli: Cli, tmp_path: Path) -> None:
    out, result = transcribe(
        shared_cli, "-f", "vtt", "--max-line-width", "16", "--max-line-count", "1"
    )
    assert out == formats.render(result, "vtt", formats.SubtitleOptions(16, 1))
    path = tmp_path / "out.vtt"
    path.write_text(out)
    captions = webvtt.read(str(path)).captions
    assert len(captions) > len(result.segments)  # one line a cue: more cues than segments
    assert all("\n" not in c.text and (len(c.text) <= 16 or " " not in c.text) for c in captions)
    assert " ".join(c.text for c in captions).split() == spoken(result)


def test_max_words_per_line_caps_the_words_of_a_cue(shared_cli: Cli) -> None:
    out, result = transcribe(shared_cli, "-f", "srt", "--max-words-per-line", "3")
    assert out == formats.render(result, "srt", formats.SubtitleOptions(max_words_per_line=3))
    cues = list(srt.parse(out))
    assert all(len(cue.content.split()) <= 3 for cue in cues)
    assert len(cues) >= len(spoken(result)) / 3
    assert " ".join(cue.content for cue in cues).split() == spoken(result)


def test_highlight_words_underlines_each_word_in_turn(shared_cli: Cli) -> None:
    out, result = transcribe(shared_cli, "-f", "srt", "--highlight-words")
    cues = list(srt.parse(out))
    marked = [re.findall(r"<u>(.*?)</u>", cue.content) for cue in cues]
    assert all(len(m) <= 1 for m in marked)
    assert [m[0] for m in marked if m] == spoken(result)  # every word once, in order
    words = [w for s in result.segments for w in s.extra["words"]]
    underlined = [cue for cue, m in zip(cues, marked, strict=True) if m]
    assert [round(c.start.total_seconds(), 3) for c in underlined] == [
        round(float(w["start"]), 3) for w in words
    ]


def test_wait_cuts_subtitles_of_a_job_with_word_timings(shared_cli: Cli) -> None:
    job_id = shared_cli.run("submit", "-q", "--word-timestamps", str(SAMPLE_MP3)).out.strip()
    done = shared_cli.run(
        "wait", job_id, "-f", "vtt", "--max-words-per-line", "2", "--highlight-words"
    )
    assert done.code == 0, done.err
    options = formats.SubtitleOptions(max_words_per_line=2, highlight_words=True)
    expected = formats.render(job_result(shared_cli, job_id), "vtt", options)
    assert done.out == expected and "<u>" in done.out


def test_wait_refuses_to_cut_a_job_without_word_timings(shared_cli: Cli) -> None:
    job_id = shared_cli.run("submit", "-q", "--no-word-timestamps", str(SAMPLE_MP3)).out.strip()
    done = shared_cli.run("wait", job_id, "-f", "srt", "--max-line-width", "20")
    assert done.code == 2, done.err
    assert "no word timings" in done.err and "--word-timestamps" in done.err
    assert_one_error_line(done.err)
    assert done.out == ""


def test_hotwords_reach_the_server(shared_cli: Cli) -> None:
    done = shared_cli.run("transcribe", str(SAMPLE_MP3), "--hotwords", "Sarah, slabs, snow peas")
    assert done.code == 0, done.err
    assert_sample(done.out)
    assert saved_jobs(shared_cli)[-1]["options"]["hotwords"] == "Sarah, slabs, snow peas"
    # Validated by the server, as every input param: its 400 is an error (exit 1) naming it.
    for bad, why in (("x" * 1001, "longer than 1000"), ("  ", "blank")):
        done = shared_cli.run("transcribe", str(SAMPLE_MP3), "--hotwords", bad)
        assert done.code == 1, done.err
        assert "'hotwords'" in done.err and why in done.err
        assert_one_error_line(done.err)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["transcribe", "a.mp3", "--max-line-count", "2"], "needs --max-line-width"),
        (
            ["transcribe", "a.mp3", "-f", "srt", "--max-line-width", "42", "--max-line-count", "2",
             "--max-words-per-line", "3"],
            "does nothing with --max-line-count",
        ),
        (
            ["transcribe", "a.mp3", "-f", "srt", "--highlight-words", "--no-word-timestamps"],
            "--no-word-timestamps turns off",
        ),
        (["transcribe", "a.mp3", "--max-line-width", "42"], "none is written"),  # txt
        (["transcribe", "a.mp3", "--json", "--highlight-words"], "none is written"),
        (["wait", "x", "--max-words-per-line", "2"], "none is written"),
        # wait follows transcribe's rules (issue 19, item 4): -f with --json needs -o
        (["wait", "x", "-f", "vtt", "--json", "--max-line-width", "9"], "--json and -f both"),
        (["wait", "x", "-f", "srt", "--max-line-count", "1"], "needs --max-line-width"),
        (["transcribe", "a.mp3", "-f", "srt", "--max-line-width", "0"], "'--max-line-width'"),
    ],
)  # fmt: skip
def test_options_that_would_do_nothing_exit_2_before_any_request(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = Cli(tmp_path).run(*args)  # no server: nothing may be sent
    assert done.code == 2, done.err
    assert message in done.err
    assert "Traceback" not in done.err


def test_eden_answers_carry_word_timings_so_the_options_work_there_too(
    server: Any, tmp_path: Path
) -> None:
    """Eden AI has no word-timestamps field, but its answers always carry word timings (the
    diarization entries): the options cut them rather than being refused."""
    eden = Cli(tmp_path / "eden")
    (Path(eden.env["WHISPERCLI_CONFIG_DIR"]) / "config.toml").write_text(
        f'[profiles.eden]\nurl = "{server.url}/v2"\nbackend = "edenai"\n'
        f'api_key = "{server.api_key}"\nproviders = "whisper"\n'
    )
    done = eden.run("--profile", "eden", "transcribe", str(SAMPLE_MP3), "-f", "srt",
                    "--max-words-per-line", "2")  # fmt: skip
    assert done.code == 0, done.err
    cues = list(srt.parse(done.out))
    assert len(cues) > 3 and all(len(cue.content.split()) <= 2 for cue in cues)
    assert_sample(" ".join(c.content for c in cues))
    done = eden.run("--profile", "eden", "submit", "--no-word-timestamps", str(SAMPLE_MP3))
    assert done.code == 2 and "Eden AI cannot take --word-timestamps" in done.err, done.err
