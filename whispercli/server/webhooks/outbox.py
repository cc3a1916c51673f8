"""Durable, at-least-once webhook delivery from rows in the store.

A job submitted with a webhook URL gets one delivery row. Once the job has ended (success,
failed or cancelled) the row is due: the :class:`Deliverer` thread builds the body once (it is
kept with the row, so every retry sends the same bytes under the same ``webhook-id``), signs
each attempt at its own time, POSTs it through the SSRF-safe sender and records the outcome.
A 2xx ends the delivery; anything else is retried on :mod:`.schedule`'s timetable, for 24 h
after the job ended. The row lives in the store, so a delivery due when the server dies is
sent after it restarts. Sending happens off the request path: a slow or dead receiver never
delays a job's status. Deliveries are independent of each other: each attempt runs on its
own sender thread (:data:`SENDERS` of them) and ends within :data:`sender.ATTEMPT_SECONDS`,
however the receiver paces its bytes; the loop claims a due delivery only when a sender is
free, and never waits for a send. Stopping ends the sends in flight at once (they are not
recorded: their lease runs out and the next start sends them again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from urllib.parse import urlsplit

from whispercli.server.storage.deliveries import Delivery, Outbox
from whispercli.server.webhooks import guard, schedule, sender
from whispercli.server.webhooks.signatures import WebhookSigner

log = logging.getLogger("whispercli.server.webhooks")

POLL_SECONDS = 1.0
"""How often the deliverer looks for due rows (a job's end also wakes it)."""
SENDERS = 8
"""Attempts in flight at once, each on its own thread."""
STORE_RETRY_SECONDS = 10.0
STOP_JOIN_SECONDS = 2.0
"""The loop thread reads the store at most this long after a stop (it never waits on a send)."""


BodyBuilder = Callable[[Delivery], bytes | None]
"""The JSON body of a delivery, or None when its job is gone (the delivery is dropped)."""


class Deliverer:
    """A thread that claims due deliveries and sends them."""

    def __init__(
        self,
        outbox: Outbox,
        signer: WebhookSigner,
        policy: guard.Policy,
        build_body: BodyBuilder,
        *,
        first_delay: float = schedule.FIRST_DELAY,
        timeout: float = sender.TIMEOUT,
        attempt_seconds: float = sender.ATTEMPT_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox, self.signer, self.policy, self.build_body = outbox, signer, policy, build_body
        self.first_delay, self.timeout, self.attempt_seconds = first_delay, timeout, attempt_seconds
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook")
        self._lock = threading.Lock()
        self._in_flight: set[sender.Watchdog] = set()
        self._busy = 0

    def attempt(self, delivery: Delivery) -> bool:
        """One attempt at ``delivery``; True when the receiver answered 2xx."""
        body = delivery.body if delivery.body is not None else self.build_body(delivery)
        if body is None:
            self.outbox.record_attempt(
                delivery.job_id, b"", delivered=False, next_at=None, error="the job is gone"
            )
            return False
        headers = self.signer.headers(delivery.message_id, body, now=self.clock())
        dog = sender.Watchdog(self.attempt_seconds)
        with self._lock:
            self._in_flight.add(dog)
        try:
            outcome = sender.post(
                delivery.url, body, headers, self.policy, timeout=self.timeout, watchdog=dog
            )
        finally:
            with self._lock:
                self._in_flight.discard(dog)
        if self._stop.is_set():
            return False  # cut short by stop: not recorded, the next start sends it
        self._record(delivery, body, outcome)
        return outcome.ok

    def _record(self, delivery: Delivery, body: bytes, outcome: sender.Outcome) -> None:
        host = urlsplit(delivery.url).hostname
        if outcome.ok:
            log.info(
                "webhook %s for job %s delivered to %s", delivery.message_id, delivery.job_id, host
            )
            self.outbox.record_attempt(
                delivery.job_id, body, delivered=True, next_at=None, error=None
            )
            return
        attempts = delivery.attempts + 1
        error = outcome.error or f"HTTP {outcome.status}"
        next_at = schedule.next_attempt_at(
            delivery.ended_at, attempts, self.clock(), self.first_delay
        )
        log.warning(
            "webhook %s for job %s to %s: attempt %d failed (%s); %s",
            delivery.message_id,
            delivery.job_id,
            host,
            attempts,
            error,
            "giving up" if next_at is None else f"retry in {next_at - self.clock():.0f} s",
        )
        self.outbox.record_attempt(
            delivery.job_id, body, delivered=False, next_at=next_at, error=error
        )

    def _attempt_safely(self, delivery: Delivery) -> None:
        if self._stop.is_set():
            return  # its lease runs out and the next start sends it
        try:
            self.attempt(delivery)
        except Exception:  # a bug or a store error must not end the sender
            if not self._stop.is_set():
                log.exception("webhook delivery for job %s failed unexpectedly", delivery.job_id)
        finally:
            self._wake.set()  # a sender is free: look for more

    def dispatch(self) -> list[Future[None]]:
        """Start an attempt at each delivery due now, as many as there are free senders; the
        loop never waits for them."""
        with self._lock:
            free = SENDERS - self._busy
        if free <= 0:
            return []
        due = self.outbox.due_deliveries(self.clock(), free)
        futures = []
        for delivery in due:
            with self._lock:
                self._busy += 1
            future = self._senders.submit(self._attempt_safely, delivery)
            future.add_done_callback(self._sender_done)
            futures.append(future)
        return futures

    def run_once(self) -> int:
        """Attempt every delivery due now (as :meth:`dispatch`) and wait for the attempts;
        return how many were made."""
        futures = self.dispatch()
        wait(futures)
        return len(futures)

    def _sender_done(self, _future: Future[None]) -> None:
        with self._lock:
            self._busy -= 1

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            pause = POLL_SECONDS
            try:
                self.dispatch()
            except Exception as exc:  # the store is down: say so once in a while, no traceback
                log.warning("cannot read due webhook deliveries (%s); retrying", exc)
                pause = STORE_RETRY_SECONDS
            self._wake.wait(pause)
            self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop at once: no new attempt starts, the ones in flight are cut short."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            in_flight = list(self._in_flight)
        for dog in in_flight:
            dog.fire()
        self._senders.shutdown(wait=False, cancel_futures=True)
        if self._thread is not None:
            self._thread.join(STOP_JOIN_SECONDS)
