"""Several inputs at once: output files that never overwrite each other, stdout that stays
parseable, paths checked before anything is uploaded (issue 10, items 8, 12, 13)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.audio import make_tone
from support.cli import Cli, assert_one_error_line
from support.protocol import list_jobs
from support.samples import SAMPLE_MP3, assert_sample, is_sample


def sample(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mp3":
        path.write_bytes(SAMPLE_MP3.read_bytes())
    else:
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(SAMPLE_MP3), str(path)],
            check=True,
            capture_output=True,
        )
    return path


def server_jobs(server: Any) -> int:
    return len(list_jobs(server.url, server.headers))


def test_same_stem_in_subfolders_mirrors_the_tree(cli: Cli, tmp_path: Path) -> None:
    coll = tmp_path / "coll"
    sample(coll / "a" / "x.mp3")
    make_tone(coll / "b" / "x.wav")
    sample(coll / "x.flac")
    out = tmp_path / "out"
    done = cli.run("transcribe", str(coll), "-o", str(out), "-f", "txt")
    assert done.code == 0, done.err
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.txt"))
    assert written == ["a/x.txt", "b/x.txt", "x.txt"]
    assert_sample((out / "a" / "x.txt").read_text())
    assert_sample((out / "x.txt").read_text())
    assert not is_sample((out / "b" / "x.txt").read_text())  # the tone's, not a's


def test_two_inputs_that_would_share_an_output_are_refused_before_upload(
    cli: Cli, server: Any, tmp_path: Path
) -> None:
    sample(tmp_path / "in" / "x.mp3")
    make_tone(tmp_path / "in" / "x.wav")
    make_tone(tmp_path / "other" / "x.wav")
    before = server_jobs(server)
    for args in (
        [str(tmp_path / "in")],
        [str(tmp_path / "in" / "x.mp3"), str(tmp_path / "other" / "x.wav")],
    ):
        done = cli.run("transcribe", *args, "-o", str(tmp_path / "out"), "-f", "txt")
        assert done.code == 2, done.err
        assert_one_error_line(done.err)
        assert "x.txt" in done.err and "x.wav" in done.err and "x.mp3" in done.err, done.err
    assert server_jobs(server) == before
    assert not (tmp_path / "out").exists()


def test_several_transcripts_on_stdout_are_separated_and_named(cli: Cli, tmp_path: Path) -> None:
    first, second = sample(tmp_path / "one.mp3"), make_tone(tmp_path / "two.wav")
    done = cli.run("transcribe", str(first), str(second))
    assert done.code == 0, done.err
    head, rest = done.out.split(f"==> {second} <==\n")
    assert head.startswith(f"==> {first} <==\n")
    assert_sample(head.split("\n", 1)[1])
    assert not is_sample(rest)


@pytest.mark.parametrize("fmt", ["srt", "vtt", "tsv", "json"])
def test_several_inputs_in_a_timed_format_need_o(
    cli: Cli, server: Any, tmp_path: Path, fmt: str
) -> None:
    before = server_jobs(server)
    done = cli.run("transcribe", "-f", fmt, str(SAMPLE_MP3), str(make_tone(tmp_path / "t.wav")))
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert "-o" in done.err and fmt in done.err
    assert server_jobs(server) == before


def test_json_with_f_is_refused_on_stdout_and_honoured_with_o(cli: Cli, tmp_path: Path) -> None:
    done = cli.run("transcribe", "--json", "-f", "srt", str(SAMPLE_MP3))
    assert done.code == 2, done.err
    assert "--json" in done.err and "-f" in done.err
    out = tmp_path / "out"
    done = cli.run("transcribe", "--json", "-f", "srt", "-o", str(out), str(SAMPLE_MP3))
    assert done.code == 0, done.err
    assert [p.name for p in out.iterdir()] == ["sample.srt"]
    assert '"result"' in done.out


def test_unusable_output_dir_fails_before_upload(cli: Cli, server: Any) -> None:
    before = server_jobs(server)
    done = cli.run("transcribe", str(SAMPLE_MP3), "-o", "/proc/nope/x")
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert "/proc/nope/x" in done.err and "unexpected" not in done.err
    assert server_jobs(server) == before


def test_unusable_state_dir_fails_before_upload(cli: Cli, server: Any) -> None:
    before = server_jobs(server)
    for args in (["transcribe", str(SAMPLE_MP3)], ["submit", str(SAMPLE_MP3)], ["status"]):
        done = cli.run(*args, WHISPERCLI_STATE_DIR="/proc/nope/state")
        assert done.code == 1, done.err
        assert_one_error_line(done.err)
        assert "/proc/nope/state" in done.err and "WHISPERCLI_STATE_DIR" in done.err
        assert "unexpected" not in done.err
    assert server_jobs(server) == before


def test_submit_of_a_directory_says_it_is_one(cli: Cli, tmp_path: Path) -> None:
    done = cli.run("submit", str(tmp_path) + "/")
    assert done.code == 2, done.err
    assert_one_error_line(done.err)
    assert "is a directory" in done.err and "no such file" not in done.err


# -- issue 19: what a new user hit ------------------------------------------------------------


def _submit(cli: Cli, path: Path) -> str:
    done = cli.run("submit", "-q", "--force", str(path))
    assert done.code == 0, done.err
    return done.out.strip()


def test_wait_of_several_jobs_names_each_and_writes_files_as_transcribe_does(
    cli: Cli, server: Any, tmp_path: Path
) -> None:
    """Item 4: `wait A B` heads each txt transcript, refuses a timed format on stdout, and
    writes files named after each job's input with -o (-f picks them)."""
    first = _submit(cli, sample(tmp_path / "one.mp3"))
    second = _submit(cli, sample(tmp_path / "two.flac"))
    done = cli.run("wait", first, second)
    assert done.code == 0, done.err
    head, rest = done.out.split(f"\n==> {second} <==\n")
    assert head.startswith(f"==> {first} <==\n")
    assert_sample(head.removeprefix(f"==> {first} <==\n"))
    assert_sample(rest)
    for fmt in ("srt", "vtt", "tsv", "json"):
        refused = cli.run("wait", first, second, "-f", fmt)
        assert refused.code == 2 and refused.out == "", refused.err
        assert_one_error_line(refused.err)
        assert "need -o DIR" in refused.err and fmt in refused.err
    out = tmp_path / "out"
    done = cli.run("wait", first, second, "-o", str(out))
    assert done.code == 0 and done.out == "", done.err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}.{fmt}" for stem in ("one", "two") for fmt in ("txt", "srt", "vtt", "tsv", "json")
    )
    assert (out / "one.srt").read_text().startswith("1\n00:00:0")
    assert (out / "two.vtt").read_text().count("WEBVTT") == 1
    only = tmp_path / "only"
    assert cli.run("wait", first, "-o", str(only), "-f", "vtt").code == 0
    assert [p.name for p in only.iterdir()] == ["one.vtt"]
    again = _submit(cli, tmp_path / "one.mp3")  # the same input: both would write one.txt
    refused = cli.run("wait", first, again, "-o", str(tmp_path / "clash"))
    assert refused.code == 2 and "would both write" in refused.err, refused.err
    assert not (tmp_path / "clash").exists()


def test_empty_inputs_are_refused_before_anything_is_uploaded(
    cli: Cli, server: Any, tmp_path: Path
) -> None:
    """Polish: an empty file or an empty stdin is exit 2 here, not a job that fails."""
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    before = server_jobs(server)
    for command in ("transcribe", "submit"):
        done = cli.run(command, str(empty))
        assert done.code == 2, done.err
        assert_one_error_line(done.err)
        assert f"{empty} is empty (0 bytes)" in done.err
    piped = cli.sub("transcribe", "-", input="")
    assert piped.returncode == 2, piped.stderr
    assert "stdin was empty" in piped.stderr
    assert server_jobs(server) == before


def test_folders_keep_their_names_and_skip_hidden_files(cli: Cli, tmp_path: Path) -> None:
    """Polish: `transcribe d1 d2 -o out` writes out/d1/..., out/d2/... (the same name in both
    is no clash); hidden files and folders are not walked; a batch that reuses its jobs says
    so in one line."""
    sample(tmp_path / "d1" / "x.mp3")
    make_tone(tmp_path / "d2" / "x.wav")
    (tmp_path / "d1" / "._x.mp3").write_bytes(b"\x00\x05\x16\x07 resource fork")  # macOS junk
    sample(tmp_path / "d1" / ".cache" / "y.mp3")
    out = tmp_path / "out"
    args = ("transcribe", str(tmp_path / "d1"), str(tmp_path / "d2"), "-o", str(out), "-f", "txt")
    done = cli.run(*args)
    assert done.code == 0, done.err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.txt")) == ["d1/x.txt", "d2/x.txt"]
    assert_sample((out / "d1" / "x.txt").read_text())
    again = cli.run(*args)
    assert again.code == 0, again.err
    assert "reused 2 earlier job(s) for the same files and options" in again.err
    assert "reusing job" not in again.err and again.err.count("reused") == 1


def test_a_video_without_sound_says_so(cli: Cli, tmp_path: Path) -> None:
    """Polish: not "tuple index out of range"."""
    video = tmp_path / "silent-film.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=c=black:s=32x32:d=1", "-an",
         str(video)],
        check=True,
    )  # fmt: skip
    done = cli.run("transcribe", str(video))
    assert done.code == 3, done.err
    assert_one_error_line(done.err)
    assert "no audio track" in done.err and "index" not in done.err
