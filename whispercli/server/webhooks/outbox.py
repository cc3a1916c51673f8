"""Durable, at-least-once webhook delivery from rows in the store.

A job submitted with a webhook URL gets one delivery row. Once the job has ended (success,
failed or cancelled) the row is due: the :class:`Deliverer` thread builds the body once (it is
kept with the row, so every retry sends the same bytes under the same ``webhook-id``), signs
each attempt at its own time, POSTs it through the SSRF-safe sender and records the outcome.
A 2xx ends the delivery; anything else is retried on :mod:`.schedule`'s timetable, for 24 h
after the job ended. The row lives in the store, so a delivery due when the server dies is
sent after it restarts. Sending happens off the request path: a slow or dead receiver never
delays a job's status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from whispercli.server.storage.deliveries import Delivery, Outbox
from whispercli.server.webhooks import guard, schedule, sender
from whispercli.server.webhooks.signatures import WebhookSigner

log = logging.getLogger("whispercli.server.webhooks")

POLL_SECONDS = 1.0
"""How often the deliverer looks for due rows (a job's end also wakes it)."""
BATCH = 20
SENDERS = 4
STORE_RETRY_SECONDS = 10.0


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox, self.signer, self.policy, self.build_body = outbox, signer, policy, build_body
        self.first_delay, self.timeout = first_delay, timeout
        self.clock = clock
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attempt(self, delivery: Delivery) -> bool:
        """One attempt at ``delivery``; True when the receiver answered 2xx."""
        body = delivery.body if delivery.body is not None else self.build_body(delivery)
        if body is None:
            self.outbox.record_attempt(
                delivery.job_id, b"", delivered=False, next_at=None, error="the job is gone"
            )
            return False
        headers = self.signer.headers(delivery.message_id, body, now=self.clock())
        outcome = sender.post(delivery.url, body, headers, self.policy, timeout=self.timeout)
        attempts = delivery.attempts + 1
        host = urlsplit(delivery.url).hostname
        if outcome.ok:
            log.info(
                "webhook %s for job %s delivered to %s", delivery.message_id, delivery.job_id, host
            )
            self.outbox.record_attempt(
                delivery.job_id, body, delivered=True, next_at=None, error=None
            )
            return True
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
        return False

    def _attempt_safely(self, delivery: Delivery) -> None:
        if self._stop.is_set():
            return  # its lease runs out and the next start sends it
        try:
            self.attempt(delivery)
        except Exception:  # a bug or a store error must not end the thread
            log.exception("webhook delivery for job %s failed unexpectedly", delivery.job_id)

    def run_once(self) -> int:
        """Attempt every delivery due now, :data:`SENDERS` at a time (a receiver that
        never answers holds one sender for the timeout, not the others); return how many."""
        due = self.outbox.due_deliveries(self.clock(), BATCH)
        if len(due) == 1:
            self._attempt_safely(due[0])
        elif due:
            with ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook") as pool:
                list(pool.map(self._attempt_safely, due))
        return len(due)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            pause = POLL_SECONDS
            try:
                if self.run_once() >= BATCH:
                    continue
            except Exception as exc:  # the store is down: say so once in a while, no traceback
                log.warning("cannot read due webhook deliveries (%s); retrying", exc)
                pause = STORE_RETRY_SECONDS
            self._wake.wait(pause)
            self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(sender.TIMEOUT + 5)
