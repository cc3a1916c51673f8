"""The storage side of webhook delivery: the :class:`Outbox` every store implements, and the
delivery rows it hands out (:mod:`whispercli.server.webhooks.outbox` sends them).

Shared by both stores: :func:`delivery_from_row` and :func:`delivery_state`, so that the two
dialects decide a row's shape and state the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def delivery_from_row(row: Mapping[str, Any], extra: dict[str, Any]) -> Delivery:
    """A store's delivery row, with its job's ``ended_at``, as a :class:`Delivery`; ``extra``
    is the row's JSON already decoded (each store's dialect stores it its own way)."""
    return Delivery(
        job_id=row["job_id"],
        message_id=row["message_id"],
        url=row["url"],
        kind=row["kind"],
        base_url=row["base_url"],
        ended_at=row["ended_at"],
        attempts=row["attempts"],
        body=bytes(row["body"]) if row["body"] is not None else None,
        extra=extra,
    )


def delivery_state(delivered: bool, next_at: float | None) -> str:
    """A delivery row's state after an attempt: ``delivered``, ``waiting`` for the retry at
    ``next_at``, or ``abandoned`` (no retry left)."""
    return "delivered" if delivered else "waiting" if next_at is not None else "abandoned"


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
