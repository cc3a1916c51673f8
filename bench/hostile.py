"""Hostile-input section: issue 20's attacks on the server, before and after, side by side.

Each attack runs against a fresh ``whispercli server run`` (loopback, a free port, temporary
dirs) of each tree given, interleaved (before, after, next attack), and reports what the
issue reported: the server's peak RSS (and the engine child's where the engine is the
target), the slowest ``/v1/health`` answer while the attack runs (polled every 0.1 s), and
what the attacker got back. Traffic goes to 127.0.0.1 only; every loop is bounded.

    python bench/hostile.py --before /work/main --after . [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.net import read_status, trickler  # noqa: E402
from support.procs import children_of, rss_mib  # noqa: E402
from support.watch import Watch  # noqa: E402

SAMPLE = ROOT / "samples" / "sample.mp3"
MIB = 1024 * 1024
SUBMIT = "/v1/async/ent/tiyarofs/1/openai/whisper-tiny"
BLOCK = b"A" * MIB


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Server:
    """``whispercli server run`` from ``tree`` (its own code: cwd and PYTHONPATH)."""

    def __init__(self, tree: Path, *args: str) -> None:
        self.tree = tree
        self.root = Path(tempfile.mkdtemp(prefix="whispercli-hostile-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPERCLI_")}
        env |= {"PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
        env |= {f"WHISPERCLI_{d.upper()}_DIR": str(self.root / d) for d in ("config", "state")}
        self.log = self.root / "server.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "whispercli", "server", "run", "--port", str(self.port),
                 "--data-dir", str(self.root / "data"), *args],
                cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, requests.RequestException):
                self.key = (self.root / "config" / "api-key").read_text().strip()
                if requests.get(self.url + "/v1/health", headers=self.auth, timeout=2).ok:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"no server from {tree}:\n{self.log.read_text()[-2000:]}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def engine_pid(self) -> int | None:
        return next((p for p in children_of(self.proc.pid) if rss_mib(p) > 50), None)

    def stop(self) -> float:
        """SIGTERM; returns the seconds it took to exit (SIGKILL after 30 s)."""
        started = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        took = time.monotonic() - started
        shutil.rmtree(self.root, ignore_errors=True)
        return took


def watch(server: Server) -> Watch:
    """The server's peak RSS (and its engine child's) and its slowest health answer."""
    return Watch(
        server.proc.pid, server.url + "/v1/health", server.auth,
        engine=server.engine_pid, timeout=60,
    )  # fmt: skip


def figures(watched: Watch) -> dict[str, float]:
    return {
        "rss_start_mib": round(watched.base),
        "rss_peak_mib": round(watched.peak),
        "engine_rss_peak_mib": round(watched.engine_peak),
        "health_worst_ms": round(watched.worst_health * 1000, 1),
    }


def _send(port: int, head: bytes, total: int) -> tuple[int | None, int, float]:
    """Send ``head`` and up to ``total`` body bytes, stopping once the server answers."""
    started, sent = time.monotonic(), 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head)
        while sent < total and not select.select([sock], [], [], 0)[0]:
            try:
                sock.settimeout(30)
                sock.sendall(BLOCK[: min(MIB, total - sent)])
            except OSError:
                break
            sent += min(MIB, total - sent)
        return read_status(sock, 60), sent, time.monotonic() - started


def _upload(server: Server, data: bytes) -> str:
    made = requests.post(server.url + "/v1/input/upload-url", headers=server.auth, timeout=30)
    url: str = made.json()["uploadUrl"]["PUT"]
    requests.put(url, data=data, timeout=60).raise_for_status()
    return url


def _wait(server: Server, job: dict[str, Any], limit: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    body = job
    while time.monotonic() < deadline:
        params: dict[str, str | int] = {"wait": 10, "until": "done"}
        answer = requests.get(job["urls"]["GET"], params=params, headers=server.auth, timeout=30)
        body = answer.json()
        if body["status"] in ("success", "failed", "cancelled"):
            break
    return body


# -- the attacks ----------------------------------------------------------------------------------
def unauthenticated_bodies(server: Server) -> dict[str, Any]:
    """Item 1: five concurrent 200 MiB JSON submits without the key."""
    head = (
        f"POST {SUBMIT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {200 * MIB}\r\n\r\n"
    ).encode()
    with watch(server) as watched, ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: _send(server.port, head, 200 * MIB), range(5)))
    return figures(watched) | {
        "answers": sorted(str(r[0]) for r in results),
        "sent_before_answer_mib": round(max(r[1] for r in results) / MIB, 1),
        "slowest_answer_s": round(max(r[2] for r in results), 2),
    }


def out_of_vocabulary_tokens(server: Server) -> dict[str, Any]:
    """Item 2: suppress_tokens [2147483647], then an ordinary job."""
    with watch(server) as watched:
        body = {
            "input": {"suppress_tokens": [2147483647]},
            "URL": _upload(server, SAMPLE.read_bytes()),
        }
        answer = requests.post(server.url + SUBMIT, json=body, headers=server.auth, timeout=30)
        outcome = f"HTTP {answer.status_code}"
        if answer.status_code == 202:
            ended = _wait(server, answer.json()["response"])
            outcome += f", job {ended['status']}: {ended.get('error', '')[:70]}"
        started = time.monotonic()
        body = {"URL": _upload(server, SAMPLE.read_bytes())}
        after = requests.post(server.url + SUBMIT, json=body, headers=server.auth, timeout=30)
        _wait(server, after.json()["response"])
        next_job = time.monotonic() - started
    return figures(watched) | {"answer": outcome, "next_job_s": round(next_job, 1)}


def slow_file_urls(server: Server) -> dict[str, Any]:
    """Item 4: six Eden launches whose file_url trickles a byte every 2 s; health and
    upload-url latency over the first 30 s."""
    with trickler(2.0) as slow, watch(server) as watched:
        pool = ThreadPoolExecutor(6)
        launches = [
            pool.submit(
                requests.post,
                server.url + "/v2/audio/speech_to_text_async",
                json={"providers": "whisper", "file_url": f"{slow}/{i}.mp3"},
                headers=server.auth,
                timeout=200,
            )
            for i in range(6)
        ]
        worst_upload_url, deadline = 0.0, time.monotonic() + 30
        while time.monotonic() < deadline:
            started = time.monotonic()
            with contextlib.suppress(requests.RequestException):
                requests.post(server.url + "/v1/input/upload-url", headers=server.auth, timeout=60)
            worst_upload_url = max(worst_upload_url, time.monotonic() - started)
            time.sleep(0.2)
        answered = [f.result().status_code for f in launches if f.done()]
        pool.shutdown(wait=False, cancel_futures=True)
    return figures(watched) | {
        "upload_url_worst_ms": round(worst_upload_url * 1000, 1),
        "launches_answered_in_30s": sorted(answered),
    }


def slow_webhook_receiver(server: Server) -> dict[str, Any]:
    """Item 8: job A's webhook trickles its status line, job B's receiver answers at once:
    B's delivery delay after B ended, then the time SIGTERM takes."""
    calls: list[float] = []
    quick = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        quick.settimeout(0.2)
        while True:
            try:
                conn, _ = quick.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                calls.append(time.monotonic())
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    quick_url = f"http://127.0.0.1:{quick.getsockname()[1]}/hook"
    with trickler(2.0) as slow:
        jobs = []
        for hook in (slow + "/hook", quick_url):
            body = {"URL": _upload(server, SAMPLE.read_bytes()), "webhook": hook}
            answer = requests.post(server.url + SUBMIT, json=body, headers=server.auth, timeout=30)
            jobs.append(answer.json()["response"])
        _wait(server, jobs[0])
        _wait(server, jobs[1])
        ended = time.monotonic()
        deadline = ended + 60
        while not calls and time.monotonic() < deadline:
            time.sleep(0.05)
        delay = (calls[0] - ended) if calls else None
        shutdown = server.stop()
    quick.close()
    return {
        "quick_webhook_delay_s": None if delay is None else round(max(delay, 0.0), 2),
        "shutdown_s": round(shutdown, 1),
    }


def temperature_list(server: Server) -> dict[str, Any]:
    """Item 9: 100 temperatures with the fallback forced (logprob_threshold 0)."""
    params = {"temperature": [0.2] * 100, "logprob_threshold": 0.0, "vad_filter": False}
    with watch(server) as watched:
        body = {"input": params, "URL": _upload(server, SAMPLE.read_bytes())}
        started = time.monotonic()
        answer = requests.post(server.url + SUBMIT, json=body, headers=server.auth, timeout=30)
        outcome = f"HTTP {answer.status_code}"
        if answer.status_code == 202:
            ended = _wait(server, answer.json()["response"], limit=600)
            outcome += f", job {ended['status']}"
        took = time.monotonic() - started
    return figures(watched) | {"answer": outcome, "job_s": round(took, 1)}


def big_predicts(server: Server) -> dict[str, Any]:
    """Item 10: six ~100 MiB base64 predict bodies at once."""

    def body() -> Iterator[bytes]:
        yield b'{"language": "en", "audio": "'
        for _ in range(96):
            yield BLOCK
        yield b'"}'

    def predict(_: int) -> int:
        headers = {**server.auth, "X-OctoAI-Async": "1", "Content-Type": "application/json"}
        answer = requests.post(server.url + "/predict", data=body(), headers=headers, timeout=300)
        return answer.status_code

    with watch(server) as watched, ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(predict, range(6)))
    return figures(watched) | {"answers": sorted(statuses)}


HIDDEN = ("64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "::a9fe:a9fe", "::ffff:0:a9fe:a9fe",
          "168.63.129.16")  # fmt: skip
"""169.254.169.254 as NAT64, 6to4, IPv4-compatible and -translated, and Azure's WireServer."""


def _guard_allows(tree: Path) -> str:
    """How many of :data:`HIDDEN` the tree's SSRF guard allows: asked of its ``refusal``
    function in a child process, so nothing is ever sent to them."""
    script = (
        "import ipaddress, sys\n"
        "from whispercli.server.webhooks import guard\n"
        "policy = guard.Policy()\n"
        "print(sum(guard.refusal(ipaddress.ip_address(a), policy) is None for a in sys.argv[1:]))"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", script, *HIDDEN], cwd=tree, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    return f"{done.stdout.strip()} of {len(HIDDEN)}"


def small_attacks(server: Server) -> dict[str, Any]:
    """Items 11, 12, 13, 15, 16: one request each, what came back."""
    out: dict[str, Any] = {}
    deep = "[" * 50_000 + "]" * 50_000
    for name, path, text in (
        ("nested_predict", "/predict", f'{{"audio": "AAAA", "x": {deep}}}'),
        (
            "nested_eden",
            "/v2/audio/speech_to_text_async",
            f'{{"providers": "whisper", "x": {deep}}}',
        ),
    ):
        headers = {**server.auth, "Content-Type": "application/json"}
        out[name] = requests.post(
            server.url + path, data=text, headers=headers, timeout=30
        ).status_code
    out["tracebacks_in_log"] = server.log.read_text(errors="replace").count("Traceback")
    out["hidden_metadata_addresses_allowed"] = _guard_allows(server.tree)
    put_url = _upload(server, SAMPLE.read_bytes())
    parts = urlsplit(put_url)
    other = b"not audio " * 10000
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        head = f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: x\r\n"
        head += f"Content-Length: {len(other)}\r\n\r\n"
        sock.sendall(head.encode() + other[:50000])
        time.sleep(0.5)
        requests.post(server.url + SUBMIT, json={"URL": put_url}, headers=server.auth, timeout=30)
        sock.sendall(other[50000:])
        out["late_put_after_submit"] = read_status(sock, 30)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Half: ")
        sock.settimeout(15)
        try:
            out["half_sent_headers_after_15s"] = "closed" if sock.recv(10) == b"" else "answered"
        except TimeoutError:
            out["half_sent_headers_after_15s"] = "still open"
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        # upload-url takes no body: before, h11 takes the chunked framing and the route 201s
        head = "POST /v1/input/upload-url HTTP/1.1\r\nHost: x\r\n"
        head += f"Authorization: Bearer {server.key}\r\n"
        sock.sendall(
            head.encode() + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        out["content_length_and_chunked"] = read_status(sock, 10)
    made = requests.post(
        server.url + "/v1/input/upload-url",
        headers={**server.auth, "Host": "evil.example"},
        timeout=30,
    ).json()
    out["host_header_in_upload_url"] = "evil.example" in made["uploadUrl"]["PUT"]
    docs = requests.get(server.url + "/docs", timeout=30).text
    out["docs_external_urls"] = docs.count("https://")
    audio = base64.b64encode(SAMPLE.read_bytes()).decode()
    predict = requests.post(
        server.url + "/predict", json={"audio": audio}, headers=server.auth, timeout=120
    )
    out["predict_sample"] = predict.status_code
    return out


ATTACKS: dict[str, Callable[[Server], dict[str, Any]]] = {
    "unauthenticated 5 x 200 MiB submit bodies": unauthenticated_bodies,
    "suppress_tokens [2147483647]": out_of_vocabulary_tokens,
    "6 Eden file_url trickling 1 byte / 2 s": slow_file_urls,
    "webhook receiver trickling its status line": slow_webhook_receiver,
    "100 temperatures, fallback forced": temperature_list,
    "6 x 96 MiB /predict bodies at once": big_predicts,
    "nested JSON, hidden IPv4, late PUT, half-sent headers, CL+TE, Host, /docs": small_attacks,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="tree of the code before")
    parser.add_argument("--after", type=Path, required=True, help="tree of the code after")
    parser.add_argument("--only", nargs="*", help="attack names (substrings) to run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict[str, dict[str, Any]] = {}
    for name, attack in ATTACKS.items():
        if args.only and not any(o in name for o in args.only):
            continue
        for label, tree in (("before", args.before), ("after", args.after)):
            log(f"{name}: {label}")
            server = Server(tree.resolve())
            try:
                figures.setdefault(name, {})[label] = attack(server)
            finally:
                if server.proc.poll() is None:
                    server.stop()
            log(f"  {figures[name][label]}")
    print("| attack | before | after |\n|---|---|---|")
    for name, pair in figures.items():
        cells = [
            ", ".join(f"{k} {v}" for k, v in pair[side].items()) for side in ("before", "after")
        ]
        print(f"| {name} | {cells[0]} | {cells[1]} |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
