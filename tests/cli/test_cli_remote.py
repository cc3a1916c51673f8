"""A remote URL as input: the CLI downloads it (no API key sent) and uploads it to the embedded
server; tampered signed URLs are exit 5 (issue 10, item 14). Loopback HTTP only."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote

import pytest
from support.cli import Cli, assert_one_error_line
from support.net import serve_http
from support.samples import SAMPLE_MP3, assert_sample


class _Files(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
        path = unquote(self.path.split("?")[0])
        if not path.startswith("/audio/") or not path.endswith(".mp3") or "nope" in path:
            self.send_error(404)
            return
        body = SAMPLE_MP3.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def files() -> Iterator[str]:
    """A loopback HTTP server with /audio/NAME.mp3 (the sample, any name but nope); records
    each request."""
    _Files.seen = []
    with serve_http(_Files) as url:
        yield url


def test_remote_url_is_downloaded_and_uploaded(cli: Cli, server: Any, files: str) -> None:
    url = f"{files}/audio/a.mp3?token=s3cret"
    done = cli.run("transcribe", url)
    assert done.code == 0, done.err
    assert_sample(done.out)
    [request] = _Files.seen
    assert "authorization" not in request  # the API key never goes to another host
    saved = json.loads(cli.jobs_file.read_text())["jobs"][-1]
    # Saved without its query: a token in a URL is a credential the jobs file must not keep.
    assert saved["file"] == url.split("?")[0] and saved["status"] == "success"


def test_url_inputs_name_their_files_decoded(cli: Cli, files: str, tmp_path: Path) -> None:
    """Polish: `my%20talk.mp3` writes `my talk.txt`, `caf%C3%A9.mp3` writes `café.txt`."""
    out = tmp_path / "out"
    urls = [f"{files}/audio/my%20talk.mp3", f"{files}/audio/caf%C3%A9.mp3?sig=x"]
    done = cli.run("transcribe", *urls, "-o", str(out), "-f", "txt")
    assert done.code == 0, done.err
    assert sorted(p.name for p in out.iterdir()) == ["café.txt", "my talk.txt"]


def test_remote_url_that_is_missing_exits_4(cli: Cli, files: str) -> None:
    done = cli.run("transcribe", f"{files}/audio/nope.mp3")
    assert done.code == 4, done.err
    assert_one_error_line(done.err)
    assert "nope.mp3" in done.err


def _tamper(url: str) -> str:
    return url[:-1] + ("0" if url[-1] != "0" else "1")


def test_tampered_upload_url_exits_5(cli: Cli) -> None:
    upload_url = cli.run("upload", str(SAMPLE_MP3)).out.strip()
    done = cli.run("submit", _tamper(upload_url))
    assert done.code == 5, done.err
    assert_one_error_line(done.err)
    assert "signature" in done.err and "API key" not in done.err


def test_tampered_poll_url_exits_5(cli: Cli) -> None:
    assert cli.run("submit", "-q", str(SAMPLE_MP3)).code == 0
    state = json.loads(cli.jobs_file.read_text())
    state["jobs"][-1]["poll_url"] = _tamper(state["jobs"][-1]["poll_url"])
    cli.jobs_file.write_text(json.dumps(state))
    done = cli.run("status")
    assert done.code == 5, done.err
    assert_one_error_line(done.err)
    assert "signature" in done.err and "API key" not in done.err
