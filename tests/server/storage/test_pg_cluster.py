"""The throwaway PostgreSQL fixture itself: it runs, clones databases, and goes away."""

from __future__ import annotations

import psycopg
from support.pg_cluster import PostgresCluster


def test_cluster_runs_and_clones_fresh_databases(postgres: PostgresCluster) -> None:
    def setup(dsn: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (x int)")

    first = postgres.new_database(setup)
    second = postgres.new_database(setup)
    assert first != second
    with psycopg.connect(first, autocommit=True) as conn:
        version = conn.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) // 10000 == 15
        conn.execute("INSERT INTO marker VALUES (1)")
    with psycopg.connect(second, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM marker").fetchone()  # the template's table
        assert row == (0,)


def test_a_cluster_of_its_own_stops_and_leaves_nothing() -> None:
    cluster = PostgresCluster(durable=True)
    cluster.start()
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            row = conn.execute("SHOW fsync").fetchone()
            assert row == ("on",)
    finally:
        cluster.remove()
    assert not cluster.root.exists()
