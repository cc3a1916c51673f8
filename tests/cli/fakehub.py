"""A fake Hugging Face endpoint (stdlib only) serving model folders as repos, on loopback.

The routes and headers ``snapshot_download`` uses (vendor-protocols notes): the revision info,
the tree listing, then per file a HEAD (``X-Repo-Commit``, ``ETag``, ``Content-Length``) and a
GET of ``/{repo}/resolve/{sha}/{file}`` that honours ``Range``. Unknown repos are 404 with
``X-Error-Code: RepoNotFound``. ``stall(file, after)`` makes the next GET of ``file`` send
``after`` bytes and then hang until :meth:`FakeHub.release` (a process killed mid-file);
``cut(file, after)`` makes it send ``after`` bytes and close the connection (a dropped line).
Every request is recorded in ``requests`` as ``(method, path, range header)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from support.net import serve_http

_REVISION = re.compile(r"^/api/models/([^/]+/[^/]+)/revision/([^/?]+)")
_TREE = re.compile(r"^/api/models/([^/]+/[^/]+)/tree/([^/?]+)")
_RESOLVE = re.compile(r"^/([^/]+/[^/]+)/resolve/([^/]+)/([^?]+)")


class FakeRepo:
    def __init__(self, folder: Path) -> None:
        self.files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}
        digest = hashlib.sha1()
        self.oids: dict[str, str] = {}
        for name, path in self.files.items():
            data = path.read_bytes()
            self.oids[name] = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            digest.update(self.oids[name].encode())
        self.sha = digest.hexdigest()


class FakeHub:
    def __init__(self, repos: dict[str, Path]) -> None:
        self.repos = {repo_id: FakeRepo(folder) for repo_id, folder in repos.items()}
        self.requests: list[tuple[str, str, str | None]] = []
        self._stalls: dict[str, int] = {}
        self._cuts: dict[str, int] = {}
        self._released = threading.Event()
        self.stalled = threading.Event()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub._handle(self, head=False)

            def do_HEAD(self) -> None:
                hub._handle(self, head=True)

        self._handler = Handler
        self._serving = contextlib.ExitStack()
        self.url = ""

    def __enter__(self) -> FakeHub:
        self.url = self._serving.enter_context(serve_http(self._handler))
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self._serving.close()

    def stall(self, filename: str, after: int) -> None:
        self._stalls[filename] = after
        self._released.clear()

    def cut(self, filename: str, after: int) -> None:
        self._cuts[filename] = after

    def release(self) -> None:
        self._released.set()

    def file_gets(self) -> list[str]:
        return [
            path for method, path, _ in self.requests if method == "GET" and "/resolve/" in path
        ]

    # -- routes -----------------------------------------------------------------------------
    def _handle(self, req: BaseHTTPRequestHandler, *, head: bool) -> None:
        self.requests.append(("HEAD" if head else "GET", req.path, req.headers.get("Range")))
        if match := _REVISION.match(req.path):
            repo = self._repo(req, match.group(1))
            if repo is not None and match.group(2) not in ("main", repo.sha):
                self._error(req, 404, "RevisionNotFound", "Invalid rev id")
            elif repo is not None:
                siblings = [{"rfilename": name} for name in repo.files]
                self._json(req, {"id": match.group(1), "sha": repo.sha, "siblings": siblings})
        elif match := _TREE.match(req.path):
            repo = self._repo(req, match.group(1))
            if repo is not None:
                tree = [
                    {"type": "file", "path": n, "size": p.stat().st_size, "oid": repo.oids[n]}
                    for n, p in repo.files.items()
                ]
                self._json(req, tree)
        elif match := _RESOLVE.match(req.path):
            repo = self._repo(req, match.group(1))
            if repo is not None:
                self._file(req, repo, match.group(3), head=head)
        else:
            self._error(req, 404, "EntryNotFound", "not found")

    def _repo(self, req: BaseHTTPRequestHandler, repo_id: str) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(req, 404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def _file(self, req: BaseHTTPRequestHandler, repo: FakeRepo, name: str, *, head: bool) -> None:
        path = repo.files.get(name)
        if path is None:
            self._error(req, 404, "EntryNotFound", f"{name} not found")
            return
        size = path.stat().st_size
        start = 0
        ranged = re.match(r"bytes=(\d+)-$", req.headers.get("Range") or "")
        if ranged and not head:
            start = int(ranged.group(1))
        req.send_response(206 if start else 200)
        req.send_header("X-Repo-Commit", repo.sha)
        req.send_header("ETag", f'"{repo.oids[name]}"')
        req.send_header("Content-Length", str(size - start))
        if start:
            req.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        req.end_headers()
        if head:
            return
        with path.open("rb") as fh:
            fh.seek(start)
            cut_at = self._cuts.pop(name, None)
            if cut_at is not None and not start:
                req.wfile.write(fh.read(cut_at))
                req.close_connection = True
                return
            stall_at = self._stalls.pop(name, None)
            if stall_at is not None and not start:
                req.wfile.write(fh.read(stall_at))
                req.wfile.flush()
                self.stalled.set()
                self._released.wait(60)
                req.close_connection = True
                return
            while chunk := fh.read(1024 * 1024):
                req.wfile.write(chunk)

    @staticmethod
    def _json(req: BaseHTTPRequestHandler, body: Any) -> None:
        data = json.dumps(body).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    @staticmethod
    def _error(req: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        req.send_response(status)
        req.send_header("X-Error-Code", code)
        req.send_header("X-Error-Message", message)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)
