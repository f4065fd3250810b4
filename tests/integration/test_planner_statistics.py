"""The engine analyzes its own tables when their planner statistics fall behind.

Without statistics a batch's ``ticket_id = ANY($1)`` looks like the whole table to the
planner, which then reads all of it; the engine's ANALYZE puts the index back in use.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
from prometheus_client import REGISTRY

from engine.store.migrate import migrate
from engine.store.postgres.recording import EVENT_IDS
from engine.store.postgres.statistics import LOCK, StatisticsKeeper, analyze_changed

pytestmark = pytest.mark.integration
TICKETS = 50_000


def analyzed_events() -> float:
    """The engine's count of its ANALYZE runs on ``events``, as /metrics shows it."""
    found = REGISTRY.get_sample_value("sla_engine_tables_analyzed_total", {"table": "events"})
    return found or 0.0


async def plan(db: asyncpg.Connection, tickets: int) -> str:
    """The plan of intake's look-up of a batch's events (EXPLAIN only: nothing runs)."""
    ids = [f"T-{n}" for n in range(tickets)]
    rows = await db.fetch(f"EXPLAIN {EVENT_IDS}", ids)
    return "\n".join(row[0] for row in rows)


async def until_analyzed(
    pool: asyncpg.Pool, table: str, analyzed_at: dict[str, int] | None = None
) -> list[str]:
    """analyze_changed until it takes ``table``: the statistics system reports the
    inserts a moment after they commit."""
    analyzed_at = {} if analyzed_at is None else analyzed_at
    deadline = time.monotonic() + 30
    while True:
        analyzed = await analyze_changed(pool, analyzed_at)
        if table in analyzed or time.monotonic() > deadline:
            return analyzed
        await asyncio.sleep(0.2)


@pytest.fixture
async def pool(database_url: str, db: asyncpg.Connection) -> AsyncIterator[asyncpg.Pool]:
    await migrate(db)
    await db.execute(
        """
        INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)
        SELECT gen_random_uuid(), 'T-' || n % $1, 'ticket.commented', now(), '{}'::jsonb
        FROM generate_series(1, 4 * $1) AS n
        """,
        TICKETS,
    )
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as pool:
        yield pool


async def test_a_grown_table_is_analyzed_and_its_index_used(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    # Never analyzed: 500 tickets' events look like all 200,000 rows of the table.
    assert "Seq Scan on events" in await plan(db, 500)
    analyzed_at: dict[str, int] = {}
    assert "events" in await until_analyzed(pool, "events", analyzed_at)
    assert "Seq Scan" not in await plan(db, 500)
    assert "events_by_ticket" in await plan(db, 500)
    # Only the indexed columns, which the look-ups filter on; not the payloads.
    sampled = await db.fetch(
        "SELECT attname FROM pg_stats WHERE schemaname = current_schema()"
        " AND tablename = 'events' ORDER BY attname"
    )
    assert [row["attname"] for row in sampled] == ["event_id", "occurred_at", "ticket_id"]
    # Analyzed once: nothing changed since, so nothing is analyzed again.
    assert "events" not in await analyze_changed(pool, analyzed_at)


async def test_a_table_that_changed_little_is_left_alone(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    analyzed_at: dict[str, int] = {}
    await until_analyzed(pool, "events", analyzed_at)
    await db.execute(
        "INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)"
        " SELECT gen_random_uuid(), 'U-' || n, 'ticket.commented', now(), '{}'::jsonb"
        " FROM generate_series(1, 60) AS n"
    )  # more than 50 rows, far less than a tenth of 200,000
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the statistics system has counted them
        changed = await db.fetchval(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'events'"
        )
        if changed >= 60:
            break
        await asyncio.sleep(0.2)
    assert changed >= 60
    assert "events" not in await analyze_changed(pool, analyzed_at)


async def test_a_table_autovacuum_analyzed_is_left_alone(
    db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the inserts are counted: none lands after
        inserted = await db.fetchval(
            "SELECT n_tup_ins FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'events'"
        )
        if inserted >= 4 * TICKETS:
            break
        await asyncio.sleep(0.2)
    await db.execute("ANALYZE events")  # as autovacuum's analyze does, every column
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # its reset of the count of changes has landed
        changed = await db.fetchval(
            "SELECT n_mod_since_analyze FROM pg_stat_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'events'"
        )
        if changed == 0:
            break
        await asyncio.sleep(0.2)
    assert changed == 0
    assert "events" not in await analyze_changed(pool, {})


async def test_one_engine_analyzes_at_a_time(
    database_url: str, db: asyncpg.Connection, pool: asyncpg.Pool
) -> None:
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():  # another engine analyzing now
            assert await other.fetchval(LOCK)
            assert await analyze_changed(pool, {}) == []
    finally:
        await other.close()
    assert "events" in await until_analyzed(pool, "events")


async def test_the_keeper_counts_what_it_analyzed(pool: asyncpg.Pool) -> None:
    before = analyzed_events()
    keeper = StatisticsKeeper(pool)
    deadline = time.monotonic() + 30
    while analyzed_events() == before:
        assert time.monotonic() < deadline, "events was never analyzed"
        await keeper.refresh()
        await asyncio.sleep(0.2)
    assert analyzed_events() == before + 1
