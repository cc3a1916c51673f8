"""Quick unit tests of the fault proxy itself, against a tiny stdlib HTTP server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
import requests
from faultproxy import FaultProxy, Rule
from support.net import port_of, serve_http

pytestmark = pytest.mark.reliability

BIG = 200_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    received: list[int]  # body sizes of complete PUTs (set on the class by the fixture)

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b"x" * (BIG if self.path == "/big" else 2)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        # Answer first, read the body afterwards: legal HTTP, and what a server does when it
        # rejects a request before looking at its body.
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        self.rfile.read(int(self.headers["Content-Length"]))

    def do_PUT(self) -> None:
        length = int(self.headers["Content-Length"])
        data = self.rfile.read(length)
        if len(data) == length:
            type(self).received.append(len(data))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def backend() -> Iterator[tuple[int, list[int]]]:
    received: list[int] = []
    # quiet: resets are the point
    with serve_http(type("H", (_Handler,), {"received": received}), quiet=True) as url:
        yield port_of(url), received


@pytest.fixture
def proxy(backend: tuple[int, list[int]]) -> Iterator[FaultProxy]:
    with FaultProxy(backend[0]) as p:
        yield p
    assert p.alive_threads == 0, "the proxy left threads running after stop()"


def test_passes_traffic_through_on_keepalive(proxy: FaultProxy) -> None:
    with requests.Session() as s:
        for _ in range(3):
            assert s.get(proxy.url + "/small", timeout=5).content == b"xx"
        assert len(s.get(proxy.url + "/big", timeout=5).content) == BIG
    assert proxy.stats.requests == 4
    assert proxy.stats.connections == 1


def test_frames_requests_when_the_answer_comes_before_the_body(proxy: FaultProxy) -> None:
    rule = proxy.add(Rule("delay", direction="down", match="GET /small", seconds=0.01))
    with requests.Session() as s:
        for _ in range(3):
            assert s.post(proxy.url + "/early", data=b"z" * 40 * BIG, timeout=5).content == b"ok"
            assert s.get(proxy.url + "/small", timeout=5).content == b"xx"
    assert proxy.stats.request_lines == ["POST /early HTTP/1.1", "GET /small HTTP/1.1"] * 3
    assert rule.fired == 1


def test_answers_a_burst_of_503_itself(proxy: FaultProxy) -> None:
    rule = proxy.add(Rule("respond", match="GET /small", status=503, retry_after=2, times=2))
    with requests.Session() as s:
        codes = [s.get(proxy.url + "/small", timeout=5) for _ in range(3)]
    assert [r.status_code for r in codes] == [503, 503, 200]
    assert codes[0].headers["Retry-After"] == "2"
    assert rule.fired == 2 and not rule.armed


def test_respond_swallows_a_put_body(proxy: FaultProxy, backend: tuple[int, list[int]]) -> None:
    proxy.add(Rule("respond", match="PUT ", status=502))
    r = requests.put(proxy.url + "/up", data=b"y" * BIG, timeout=5)
    assert r.status_code == 502
    assert backend[1] == [], "the server must never see a request the proxy answered"
    assert requests.put(proxy.url + "/up", data=b"y" * BIG, timeout=5).status_code == 200
    assert backend[1] == [BIG]


def test_drops_an_upload_midway(proxy: FaultProxy, backend: tuple[int, list[int]]) -> None:
    rule = proxy.add(Rule("drop", match="PUT ", after_bytes=10_000))
    with pytest.raises(requests.ConnectionError):
        requests.put(proxy.url + "/up", data=b"y" * (4 * BIG), timeout=5)
    assert rule.fired == 1
    time.sleep(0.2)
    assert backend[1] == [], "a dropped upload must not reach the server whole"
    requests.put(proxy.url + "/up", data=b"y" * BIG, timeout=5).raise_for_status()
    assert backend[1] == [BIG]


def test_drops_a_response_midway(proxy: FaultProxy) -> None:
    proxy.add(Rule("drop", direction="down", match="GET /big", after_bytes=5_000))
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(proxy.url + "/big", timeout=5).raise_for_status()
    assert proxy.stats.dropped == 1
    assert len(requests.get(proxy.url + "/big", timeout=5).content) == BIG


def test_resets_a_connection(proxy: FaultProxy) -> None:
    proxy.add(Rule("reset", direction="down", match="GET /big", after_bytes=0))
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/big", timeout=5)
    assert proxy.stats.reset == 1


def test_delays_a_response(proxy: FaultProxy) -> None:
    proxy.add(Rule("delay", direction="down", match="GET /small", seconds=0.5))
    start = time.monotonic()
    assert requests.get(proxy.url + "/small", timeout=5).status_code == 200
    assert time.monotonic() - start >= 0.5
    start = time.monotonic()
    requests.get(proxy.url + "/small", timeout=5)
    assert time.monotonic() - start < 0.4, "a delay rule fires once, then disarms"


def test_stop_closes_open_connections(backend: tuple[int, list[int]]) -> None:
    p = FaultProxy(backend[0]).start()
    s = requests.Session()
    s.get(p.url + "/small", timeout=5)  # leaves a keep-alive connection open
    start = time.monotonic()
    p.stop()
    s.close()
    assert time.monotonic() - start < 3
    assert p.alive_threads == 0
