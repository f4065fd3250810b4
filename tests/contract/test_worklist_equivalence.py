"""The worklist on PostgreSQL lists what the in-memory worklist lists, page by page.

PostgreSQL reads the worklist in parts along its indexes (``worklist_plan``); the memory
adapter chooses, groups and sorts every clock, as the port's contract says. Random
tickets and clocks (ties of deadlines, clocks without a ticket row, paused and stopped
breached clocks) and random queries, paged with random page sizes, must give the same
rows from both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.store.memory.reads import MemoryReads
from engine.store.memory.tables import ClockRow, Tables, TicketRow
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.reads import WorklistKey, WorklistQuery
from tests.contract.read_seeding import MemorySeeder, PostgresSeeder
from tests.contract.test_read_store import MINUTE, NOW, clock, ticket
from tests.services import own_schema

pytestmark = pytest.mark.integration

IDS = ["T1", "T10", "T10a", "T2", "t1", "Å", "Z"]  # byte order is not case order
DEPARTMENTS = ["okf", "sof"]
SERVICES = ["opus-loen", "esdh"]
FUNCTIONS = ["servicedesk", "second_line", None]
TEAMS = ["okf-team", None]
PRIORITIES = ["P1", "P2"]
METRICS = ["response", "resolution", "update"]
KEYS = ["response", "resolution", "update:1", "update:2", "ola:1"]


@st.composite
def clocks(
    draw: st.DrawFn, ticket_id: str, key: str, priority: str, department: str, service: str
) -> ClockRow:
    """A clock of the ticket; one not stopped carries its ticket's priority, department
    and service, as the recorder keeps them (tests/integration/test_open_clock_priority.py)."""
    same = {"department": department, "service": service}
    metric = draw(st.sampled_from(METRICS))
    # Deadlines on seven instants around now: ties, the overdue, the due now; and none.
    steps = draw(st.one_of(st.none(), st.integers(min_value=-3, max_value=3)))
    deadline = None if steps is None else NOW + steps * 30 * MINUTE
    kind = draw(st.sampled_from(["running", "running", "paused", "stopped"]))
    if kind == "running":
        return clock(ticket_id, key, metric=metric, deadline=deadline, priority=priority,
                     state=draw(st.sampled_from(["running", "breached"])), **same)  # fmt: skip
    ends = ["paused", "breached"] if kind == "paused" else ["met", "breached"]
    state = draw(st.sampled_from(ends))
    if kind == "paused":
        return clock(ticket_id, key, metric=metric, running=False, state=state,
                     priority=priority, **same)  # fmt: skip
    return clock(ticket_id, key, metric=metric, running=False, state=state,
                 stopped_at=NOW - 5 * MINUTE,
                 priority=draw(st.sampled_from(PRIORITIES)))  # fmt: skip


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[TicketRow], list[ClockRow]]:
    """Tickets with up to four clocks each; some clocks' tickets have no row."""
    rows, clock_rows = [], []
    for ticket_id in draw(st.lists(st.sampled_from(IDS), max_size=10, unique=True)):
        priority = draw(st.sampled_from(PRIORITIES))
        department = draw(st.sampled_from(DEPARTMENTS))
        service = draw(st.sampled_from(SERVICES))
        if draw(st.integers(min_value=0, max_value=9)) > 0:
            rows.append(
                ticket(
                    ticket_id,
                    NOW - timedelta(days=1),
                    department=department,
                    service=service,
                    priority=priority,
                    assigned_function=draw(st.sampled_from(FUNCTIONS)),
                    assigned_team=draw(st.sampled_from(TEAMS)),
                )
            )
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
            clock_rows.append(draw(clocks(ticket_id, key, priority, department, service)))
    return rows, clock_rows


# Each filter with its values; a query sets none, one, two or three of them.
FILTERS: dict[str, list[Any]] = {
    "department": DEPARTMENTS,
    "service": SERVICES,
    "priority": ["P1"],
    "function": ["second_line"],
    "team": ["okf-team"],
    "scope": ["all"],
    "metric": METRICS,
    "state": ["running", "paused", "breached", "met"],
    "breached": [True, False],
    "breaching_within": [timedelta(minutes=45), timedelta(hours=3)],
}


@st.composite
def queries(draw: st.DrawFn) -> WorklistQuery:
    names = draw(st.lists(st.sampled_from(sorted(FILTERS)), max_size=3, unique=True))
    chosen = {name: draw(st.sampled_from(FILTERS[name])) for name in names}
    return WorklistQuery(now=NOW, limit=draw(st.integers(min_value=1, max_value=4)), **chosen)


@pytest.fixture
async def connection() -> AsyncIterator[asyncpg.Connection]:
    async with own_schema("wl") as url:
        connection = await asyncpg.connect(url)
        try:
            await migrate(connection)
            yield connection
        finally:
            await connection.close()


async def pages(reads: MemoryReads | PostgresReads, query: WorklistQuery) -> list[list[str]]:
    """Every page of the query, each read after the last row of the one before."""
    found: list[list[WorklistKey]] = []
    after = None
    while True:
        page = await reads.worklist(replace(query, after=after))
        if not page:
            return [[key.ticket_id for key in keys] for keys in found]
        found.append(page)
        after = page[-1]
        assert len(found) < 50, "paging does not end"


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds(), asked=st.lists(queries(), min_size=1, max_size=6))
# A ticket both overdue and breached while paused, beside one breached while paused and
# due later: each listed once, in order, when breached tickets are asked for.
@example(
    world=(
        [ticket("A", NOW), ticket("B", NOW)],
        [
            clock("A", "response", deadline=NOW - MINUTE),
            clock("A", "resolution", running=False, state="breached"),
            clock("B", "response", deadline=NOW + MINUTE),
            clock("B", "resolution", running=False, state="breached"),
        ],
    ),
    asked=[
        WorklistQuery(now=NOW, limit=limit, breached=True, state=state)
        for limit in (1, 3)
        for state in (None, "breached")
    ],
)
async def test_postgres_lists_what_memory_lists(
    connection: asyncpg.Connection,
    world: tuple[list[TicketRow], list[ClockRow]],
    asked: list[WorklistQuery],
) -> None:
    rows, clock_rows = world
    await connection.execute("TRUNCATE clocks, tickets")
    tables = Tables()
    await MemorySeeder(tables).add(*rows, *clock_rows)
    await PostgresSeeder(connection).add(*rows, *clock_rows)
    memory, postgres = MemoryReads(tables), PostgresReads(connection)
    for query in asked:
        expected = await pages(memory, query)
        assert await pages(postgres, query) == expected, query
        # The first page alone too, from a cursor the memory adapter gave.
        if expected:
            middle = await memory.worklist(replace(query, limit=1))
            cursor = replace(query, after=middle[0])
            assert await postgres.worklist(cursor) == await memory.worklist(cursor), query
