"""The deliverer over an in-memory outbox and a loopback receiver, on a fake clock."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook
from support.net import receiver, silent_http, trickler
from support.procs import until

from whispercli.server.storage.deliveries import Delivery
from whispercli.server.webhooks import guard, schedule
from whispercli.server.webhooks.outbox import Deliverer
from whispercli.server.webhooks.signatures import WebhookSigner, new_secret


def _deliverer(
    outbox: Any, build: Callable[[Delivery], bytes | None] = lambda d: b"{}", **options: Any
) -> Deliverer:
    """A Deliverer of ``outbox`` to loopback receivers, signed with a fresh secret."""
    return Deliverer(
        outbox, WebhookSigner(new_secret()), guard.Policy(allow_loopback=True), build, **options
    )


class MemoryOutbox:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}

    def add_delivery(
        self,
        job_id: str,
        message_id: str,
        url: str,
        kind: str,
        base_url: str,
        extra: dict[str, Any],
    ) -> None:
        self.rows[job_id] = {
            "delivery": Delivery(job_id, message_id, url, kind, base_url, 1000.0, extra=extra),
            "next_at": 0.0,
            "state": "waiting",
            "errors": [],
        }

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        return [
            r["delivery"]
            for r in self.rows.values()
            if r["state"] == "waiting" and r["next_at"] <= now
        ][:limit]

    def record_attempt(
        self, job_id: str, body: bytes, *, delivered: bool, next_at: float | None, error: str | None
    ) -> None:
        row = self.rows[job_id]
        row["delivery"] = replace(row["delivery"], attempts=row["delivery"].attempts + 1, body=body)
        row["errors"].append(error)
        if delivered:
            row["state"] = "delivered"
        elif next_at is None:
            row["state"] = "abandoned"
        else:
            row["next_at"] = next_at


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_down_three_times_then_up_gets_it_once_with_one_id(no_connect: list[object]) -> None:
    secret = new_secret()
    outbox, clock = MemoryOutbox(), Clock()
    built: list[str] = []

    def build(delivery: Delivery) -> bytes:
        built.append(delivery.job_id)
        return json.dumps({"id": delivery.job_id, "status": "success"}).encode()

    with receiver([503, 500, 404]) as rx:
        outbox.add_delivery("job1", "msg_1", rx.url, "tiyaro", "http://x", {})
        deliverer = Deliverer(
            outbox, WebhookSigner(secret), guard.Policy(allow_loopback=True), build, clock=clock
        )
        waits = []
        for _ in range(10):
            deliverer.run_once()
            row = outbox.rows["job1"]
            if row["state"] != "waiting":
                break
            assert deliverer.run_once() == 0  # not due again before its time
            waits.append(row["next_at"] - clock.now)
            clock.now = row["next_at"]
        assert outbox.rows["job1"]["state"] == "delivered"
        assert len(rx.received) == 4
    assert waits == [5, 10, 20]
    assert built == ["job1"]  # the body is built once, then kept
    assert {r.headers["webhook-id"] for r in rx.received} == {"msg_1"}
    assert len({r.body for r in rx.received}) == 1
    assert outbox.rows["job1"]["errors"] == ["HTTP 503", "HTTP 500", "HTTP 404", None]
    last = rx.received[-1]  # signed at its own attempt's time (the fake clock's)
    assert last.headers["webhook-timestamp"] == str(int(clock.now))
    signed_at = datetime.fromtimestamp(int(clock.now), UTC)
    expected = Webhook(secret).sign("msg_1", signed_at, last.body.decode())
    assert last.headers["webhook-signature"] == expected


def test_gives_up_after_a_day_and_drops_deliveries_of_deleted_jobs(
    no_connect: list[object],
) -> None:
    outbox, clock = MemoryOutbox(), Clock()
    with receiver() as rx:
        port = rx.port
    outbox.add_delivery("dead", "msg_d", f"http://127.0.0.1:{port}/hook", "tiyaro", "", {})
    outbox.add_delivery("gone", "msg_g", f"http://127.0.0.1:{port}/hook", "tiyaro", "", {})
    deliverer = _deliverer(outbox, lambda d: None if d.job_id == "gone" else b"{}", clock=clock)
    for _ in range(100):
        deliverer.run_once()
        row = outbox.rows["dead"]
        if row["state"] != "waiting":
            break
        clock.now = row["next_at"]
    assert outbox.rows["dead"]["state"] == "abandoned"
    assert outbox.rows["dead"]["delivery"].attempts == len(schedule.offsets())
    assert clock.now - 1000.0 <= schedule.GIVE_UP_AFTER
    assert outbox.rows["gone"]["state"] == "abandoned"
    assert outbox.rows["gone"]["errors"] == ["the job is gone"]


def test_refused_url_is_never_connected(names: Any, no_connect: list[object]) -> None:
    names({"lan.test": ["10.0.0.7"]})
    outbox, clock = MemoryOutbox(), Clock()
    outbox.add_delivery("j", "msg_j", "http://lan.test/hook", "tiyaro", "", {})
    deliverer = _deliverer(outbox, clock=clock)
    deliverer.run_once()
    assert outbox.rows["j"]["errors"][0].startswith("refused")
    assert no_connect == []


def test_the_thread_outlives_a_store_outage(
    monkeypatch: Any, no_connect: list[object], caplog: Any
) -> None:
    from whispercli.server.webhooks import outbox as outbox_module

    monkeypatch.setattr(outbox_module, "STORE_RETRY_SECONDS", 0.05)
    monkeypatch.setattr(outbox_module, "POLL_SECONDS", 0.05)
    store = MemoryOutbox()
    real_due = store.due_deliveries
    outages = [1, 2]

    def flaky_due(now: float, limit: int) -> list[Delivery]:
        if outages:
            outages.pop()
            raise ConnectionError("the database is unavailable")
        return real_due(now, limit)

    store.due_deliveries = flaky_due  # type: ignore[method-assign]
    with receiver() as rx:
        store.add_delivery("j", "msg_j", rx.url, "tiyaro", "", {})
        deliverer = _deliverer(store)
        deliverer.start()
        try:
            assert rx.wait(1, 10)
            # the receiver has it; the attempt is recorded once its answer is read (a stop
            # before then leaves the delivery to be sent again: shutdown never waits on one)
            until(lambda: store.rows["j"]["state"] == "delivered", timeout=10)
        finally:
            deliverer.stop()
    warnings = [r for r in caplog.records if "cannot read due webhook deliveries" in r.message]
    assert len(warnings) == 2 and all(r.exc_info is None for r in warnings)


def test_a_receiver_that_never_answers_does_not_hold_the_others(no_connect: list[object]) -> None:
    import time

    store = MemoryOutbox()
    with receiver() as rx, silent_http() as silent:  # accepts, never answers
        store.add_delivery("slow", "msg_s", f"{silent}/", "t", "", {})
        store.add_delivery("fast", "msg_f", rx.url, "tiyaro", "", {})
        deliverer = _deliverer(store, timeout=3)
        started = time.monotonic()
        thread = threading.Thread(target=deliverer.run_once)
        thread.start()
        try:
            assert rx.wait(1, 2), "the fast receiver waited for the silent one"
            assert time.monotonic() - started < 2
        finally:
            thread.join(10)
    assert store.rows["fast"]["state"] == "delivered"
    assert store.rows["slow"]["errors"][0] and "timed out" in store.rows["slow"]["errors"][0]


def test_an_attempt_ends_at_its_deadline_however_slowly_the_receiver_answers(
    no_connect: list[object],
) -> None:
    import time

    store = MemoryOutbox()
    with trickler(0.2) as slow:  # one byte of its answer every 0.2 s
        store.add_delivery("j", "msg_j", f"{slow}/hook", "tiyaro", "", {})
        deliverer = _deliverer(store, attempt_seconds=1)
        started = time.monotonic()
        assert deliverer.run_once() == 1
    assert time.monotonic() - started < 3
    assert store.rows["j"]["errors"] == ["it took longer than 1 s"]


def test_stop_cuts_the_sends_in_flight_short(no_connect: list[object]) -> None:
    import time

    store, accepted = MemoryOutbox(), threading.Event()
    with trickler(0.2, accepted) as slow:
        store.add_delivery("j", "msg_j", f"{slow}/hook", "tiyaro", "", {})
        deliverer = _deliverer(store)
        deliverer.start()
        assert accepted.wait(10)
        started = time.monotonic()
        deliverer.stop()
        assert time.monotonic() - started < 1
    time.sleep(0.3)  # the cut send ends; nothing is recorded for it
    assert store.rows["j"]["errors"] == [] and store.rows["j"]["delivery"].attempts == 0
