"""The Notifier contract: a subscriber is woken promptly by a change made elsewhere -- another
thread for the in-process notifier, another connection (a worker on another machine) writing
the jobs table for PostgreSQL -- and not by changes of other jobs."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest
from support.pg_cluster import PostgresCluster

from whispercli.server.storage.local_notify import LocalNotifier
from whispercli.server.storage.notify import Notifier

NOTIFIERS = ["local_notifier", "postgres_notifier"]


@dataclass
class Setup:
    notifier: Notifier
    new_job: Callable[[], str]
    """Make a job (its id) that ``change`` may change."""
    change: Callable[[str], None]
    """Change a job from elsewhere (blocking; run in a thread)."""
    ready: Callable[[], Awaitable[object]] | None = None
    """Wait until the notifier listens (after ``start``)."""


@pytest.fixture
def local_notifier() -> Setup:
    notifier = LocalNotifier()
    ids = iter(f"{i:032x}" for i in range(1000))
    return Setup(notifier, lambda: next(ids), notifier.notify)


@pytest.fixture
def postgres_notifier(postgres: PostgresCluster) -> Iterator[Setup]:
    from whispercli.server.scale.queue import migrate
    from whispercli.server.storage.postgres.notify import PostgresNotifier
    from whispercli.server.storage.postgres.store import PostgresStore

    dsn = postgres.new_database(migrate)
    other_machine = PostgresStore(dsn)
    notifier = PostgresNotifier(dsn)

    def new_job() -> str:
        upload_id = other_machine.create_upload(None)
        job, _ = other_machine.create_job("tiny", {}, upload_id, None)
        return job.id

    def change(job_id: str) -> None:
        other_machine.cancel(job_id)  # an update of the row, and no notify() call

    yield Setup(notifier, new_job, change, lambda: asyncio.wait_for(notifier.listening.wait(), 10))
    other_machine.close()


@pytest.fixture(params=NOTIFIERS)
def setup(request: pytest.FixtureRequest) -> Setup:
    chosen: Setup = request.getfixturevalue(request.param)
    return chosen


def test_a_change_elsewhere_wakes_its_subscriber_promptly(setup: Setup) -> None:
    async def scenario() -> list[float]:
        notifier = setup.notifier
        await notifier.start()
        try:
            if setup.ready is not None:
                await setup.ready()
            delays = []
            for _ in range(5):
                job_id = await asyncio.to_thread(setup.new_job)
                other = await asyncio.to_thread(setup.new_job)
                with notifier.subscribe(job_id) as event, notifier.subscribe(other) as bystander:
                    await asyncio.sleep(0.05)  # let the job's own creation notice pass
                    event.clear()
                    bystander.clear()
                    started = time.perf_counter()
                    changer = threading.Thread(target=setup.change, args=(job_id,))
                    changer.start()
                    await asyncio.wait_for(event.wait(), 2)
                    delays.append(time.perf_counter() - started)
                    await asyncio.to_thread(changer.join)
                    assert not bystander.is_set()
            return delays
        finally:
            await notifier.close()

    delays = asyncio.run(scenario())
    assert statistics.median(delays) < 0.1, delays


def test_postgres_listener_reconnects_after_a_restart(postgres_outage: PostgresCluster) -> None:
    from whispercli.server.scale.queue import migrate
    from whispercli.server.storage.postgres.notify import PostgresNotifier
    from whispercli.server.storage.postgres.store import PostgresStore

    cluster = postgres_outage  # this test restarts PostgreSQL
    dsn = cluster.new_database(migrate)
    notifier = PostgresNotifier(dsn)

    async def scenario() -> None:
        await notifier.start()
        await asyncio.wait_for(notifier.listening.wait(), 10)
        with notifier.subscribe("a" * 32) as event:
            await asyncio.to_thread(cluster.stop, "fast")
            await asyncio.wait_for(event.wait(), 10)  # a lost connection wakes everyone
        await asyncio.to_thread(cluster.start)
        await asyncio.wait_for(notifier.listening.wait(), 15)
        store = PostgresStore(dsn)
        try:
            upload_id = await asyncio.to_thread(store.create_upload, None)
            job, _ = await asyncio.to_thread(store.create_job, "tiny", {}, upload_id, None)
            with notifier.subscribe(job.id) as event:
                await asyncio.to_thread(store.cancel, job.id)
                await asyncio.wait_for(event.wait(), 2)
        finally:
            store.close()
            await notifier.close()

    asyncio.run(scenario())
