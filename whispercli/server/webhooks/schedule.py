"""When a failed delivery is tried again: a pure function of the attempts made so far.

The first attempt is made at once; after the n-th failed attempt the next comes
``FIRST_DELAY * 2**(n-1)`` seconds later, capped at ``MAX_DELAY`` (5 s, 10 s, 20 s, ... 2560 s,
then hourly), until ``GIVE_UP_AFTER`` seconds have passed since the delivery was created.
No jitter: each delivery has its own start time, and a local server sends few of them.
"""

from __future__ import annotations

FIRST_DELAY = 5.0
MAX_DELAY = 3600.0
GIVE_UP_AFTER = 24 * 3600.0


def retry_delay(attempts: int, first: float = FIRST_DELAY) -> float:
    """Seconds to wait after ``attempts`` (>= 1) failed attempts (``first`` after the first)."""
    if attempts < 1:
        raise ValueError("retry_delay needs at least one failed attempt")
    return min(first * 2 ** min(attempts - 1, 32), MAX_DELAY)


def next_attempt_at(
    created_at: float, attempts: int, failed_at: float, first: float = FIRST_DELAY
) -> float | None:
    """When to try again after ``attempts`` failures, the last at ``failed_at``; None: give up."""
    when = failed_at + retry_delay(attempts, first)
    return when if when <= created_at + GIVE_UP_AFTER else None


def offsets() -> list[float]:
    """Seconds from creation of every attempt, if each fails at once (for docs and tests)."""
    times, attempts = [0.0], 0
    while True:
        attempts += 1
        when = next_attempt_at(0.0, attempts, times[-1])
        if when is None:
            return times
        times.append(when)
