"""The storage side of webhook delivery: the :class:`Outbox` the job store implements, and
the delivery rows it hands out (:mod:`whispercli.server.webhooks.outbox` sends them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

LEASE_SECONDS = 60.0
"""A delivery handed out by ``due_deliveries`` is not handed out again for this long unless
its attempt is recorded: servers sharing one store do not send it twice at once."""


@dataclass(frozen=True)
class Delivery:
    job_id: str
    message_id: str
    url: str
    kind: str
    """Whose body to send: ``tiyaro`` (our job body) or ``edenai`` (Eden's get-job body)."""
    base_url: str
    """The server URL the job was submitted to (for the URLs in the body)."""
    ended_at: float
    """When the job ended: the 24 h of retries count from here."""
    attempts: int = 0
    body: bytes | None = None
    """The body sent, kept from the first attempt on."""
    extra: dict[str, Any] = field(default_factory=dict)


class Outbox(Protocol):
    """The store's side of webhook delivery."""

    def add_delivery(
        self,
        job_id: str,
        message_id: str,
        url: str,
        kind: str,
        base_url: str,
        extra: dict[str, Any],
    ) -> None:
        """Record that ``job_id`` is to be delivered to ``url`` once it ends."""
        ...

    def due_deliveries(self, now: float, limit: int) -> list[Delivery]:
        """Claim the deliveries of ended jobs, neither delivered nor given up, due at ``now``
        (each then leased for :data:`LEASE_SECONDS`)."""
        ...

    def record_attempt(
        self, job_id: str, body: bytes, *, delivered: bool, next_at: float | None, error: str | None
    ) -> None:
        """Count one attempt; ``delivered`` ends it, else retry at ``next_at`` (None: give up)."""
        ...
