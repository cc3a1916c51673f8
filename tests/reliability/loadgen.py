"""A bounded asyncio HTTP/1.1 load generator (stdlib only) for loopback.

``run(port, paths, headers, connections=1000, requests_each=3)`` opens every connection first,
then releases them together, so ``connections`` requests are in flight at once; each
connection then sends its requests one after another (keep-alive). Returns status counts,
errors and latency percentiles. Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    connections: int
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def server_errors(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def summary(self) -> dict[str, object]:
        return {
            "concurrent_connections": self.connections,
            "requests": self.requests,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(self.errors),
            "p50_ms": round(self.percentile(50) * 1000, 1),
            "p99_ms": round(self.percentile(99) * 1000, 1),
            "max_ms": round(max(self.latencies, default=0.0) * 1000, 1),
            "seconds": round(self.seconds, 2),
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("closed before the status line")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return status


async def _connection(
    port: int,
    requests: list[bytes],
    start: asyncio.Event,
    ready: list[int],
    result: LoadResult,
    timeout: float,
) -> None:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    except (OSError, TimeoutError) as exc:
        result.errors[f"connect: {type(exc).__name__}"] += 1
        ready[0] += 1
        return
    ready[0] += 1
    await start.wait()
    try:
        for raw in requests:
            began = time.perf_counter()
            writer.write(raw)
            await writer.drain()
            status = await asyncio.wait_for(_read_response(reader), timeout)
            result.latencies.append(time.perf_counter() - began)
            result.statuses[status] += 1
            result.requests += 1
    except (OSError, TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
        result.errors[type(exc).__name__] += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 5)


async def _run(
    port: int,
    paths: list[str],
    headers: dict[str, str],
    connections: int,
    requests_each: int,
    timeout: float,
) -> LoadResult:
    result = LoadResult(connections=connections)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    def request(i: int) -> bytes:
        path = paths[i % len(paths)]
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{head}\r\n".encode()

    start = asyncio.Event()
    ready = [0]
    tasks = [
        asyncio.create_task(
            _connection(
                port,
                [request(c * requests_each + r) for r in range(requests_each)],
                start,
                ready,
                result,
                timeout,
            )
        )
        for c in range(connections)
    ]
    deadline = time.monotonic() + timeout
    while ready[0] < connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    began = time.perf_counter()
    start.set()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout * (requests_each + 1))
    result.seconds = time.perf_counter() - began
    return result


def run(
    port: int,
    paths: list[str],
    headers: dict[str, str],
    *,
    connections: int = 1000,
    requests_each: int = 3,
    timeout: float = 30.0,
) -> LoadResult:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    return asyncio.run(_run(port, paths, headers, connections, requests_each, timeout))
