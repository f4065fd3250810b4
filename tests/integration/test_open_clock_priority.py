"""The store's invariant the worklist's index rests on: every clock that has not stopped
carries its ticket's current priority, department and service.

The recorder measures every clock that has not stopped for good at each event of a
ticket, and the core gives a clock the priority in force at its stop (the current one
while it has none), so the clock rows and the ticket's row agree in one transaction. The
worklist on PostgreSQL reads running clocks of one priority along an index on their own
priority column (migration 011); if a clock kept a priority the ticket had left, a ticket
would drop out of its priority's worklist. Random lives of tickets (priority changes,
pauses, resolutions, reopenings, closings, reclassifications, events late and out of
order, in random batches) through the real recorder and PostgreSQL, recorded by two
recorders in turn (two engines, each with its own memory of the tickets) and under two
priority matrices in turn (a configuration reloaded), must keep the invariant after every
batch, and each priority's worklist must list the open tickets of that priority.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from engine.store.reads import WorklistQuery
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, ORDERED, event

pytestmark = pytest.mark.integration
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)
CONFIG = load_config(EXAMPLE_CONFIG)
METER = ClockMeter(CONFIG)
# The configuration reloaded with another matrix: each priority turned around.
_MATRIX = CONFIG.general_contract.priority_matrix
_TURN = {"P1": "P4", "P2": "P3", "P3": "P2", "P4": "P1"}
_TURNED_MATRIX = {i: {u: _TURN[p] for u, p in row.items()} for i, row in _MATRIX.items()}
TURNED = ClockMeter(
    CONFIG.model_copy(
        update={
            "general_contract": CONFIG.general_contract.model_copy(
                update={"priority_matrix": _TURNED_MATRIX}
            )
        }
    )
)
PRIORITIES = ["P1", "P2", "P3", "P4"]
# Open clocks whose priority, department or service is not their ticket's.
DIFFERING = """
SELECT c.ticket_id, c.clock_key, c.priority, t.priority AS ticket_priority,
       c.department, t.department AS ticket_department, c.service, t.service AS ticket_service
FROM clocks AS c JOIN tickets AS t USING (ticket_id)
WHERE c.stopped_at IS NULL AND (c.priority IS DISTINCT FROM t.priority
    OR c.department IS DISTINCT FROM t.department OR c.service IS DISTINCT FROM t.service)
"""
# The tickets of a department with an open clock, by id.
OPEN_OF_DEPARTMENT = """
SELECT DISTINCT ticket_id FROM clocks AS c JOIN tickets AS t USING (ticket_id)
WHERE c.stopped_at IS NULL AND t.department = $1 ORDER BY ticket_id
"""
# The tickets of a priority with an open clock, by id.
OPEN_OF_PRIORITY = """
SELECT DISTINCT ticket_id FROM clocks AS c JOIN tickets AS t USING (ticket_id)
WHERE c.stopped_at IS NULL AND t.priority = $1 ORDER BY ticket_id
"""
# What may happen to a ticket after its creation, with the fields each change takes.
CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("ticket.priority_changed", {"priority": "P1"}),
    ("ticket.priority_changed", {"priority": "P2"}),
    ("ticket.priority_changed", {"priority": "P3"}),
    ("ticket.priority_changed", {"priority": "P4"}),
    ("ticket.priority_changed", {"impact": "high", "urgency": "low"}),
    ("ticket.priority_changed", {"impact": "low", "urgency": "high"}),
    ("ticket.responded", {}),
    ("ticket.status_changed", {"status": "pending_customer"}),
    ("ticket.status_changed", {"status": "in_progress"}),
    ("ticket.status_changed", {"status": "resolved"}),
    ("ticket.status_changed", {"status": "closed"}),
    ("ticket.status_changed", {"status": "pending_third_party"}),
    ("ticket.assigned", {"function": "pc-software"}),
    ("ticket.assigned", {"function": "server-network"}),
    ("ticket.commented", {"visibility": "public", "body": "Vi ser på det"}),
    ("ticket.commented", {"visibility": "public", "body": "Tak", "author_role": "requester"}),
    ("ticket.reclassified", {"department": "okf", "service": "esdh"}),
    ("ticket.reclassified", {"department": "sof", "service": "omsorgssystem"}),
    ("ticket.reclassified", {"department": "buf"}),
    ("ticket.reclassified", {"service": "print"}),
]


class Batch(NamedTuple):
    """Events recorded together, by the first or the second recorder, under the example
    configuration's priority matrix or the turned one."""

    events: list[TicketEvent]
    second: bool
    turned: bool


@st.composite
def lives(draw: st.DrawFn) -> list[Batch]:
    """Up to four tickets' events, in batches as a backlog after an outage brings them:
    the order of arrival shuffled a little, so some events arrive after later ones.
    A ticket may be created with impact and urgency instead of a priority."""
    arriving: list[TicketEvent] = []
    for n in range(draw(st.integers(min_value=1, max_value=4))):
        ticket = f"P-{n}"
        department = draw(st.sampled_from(sorted(ORDERED)))
        at = MONDAY + timedelta(minutes=draw(st.integers(0, 600)))
        graded = draw(
            st.sampled_from(
                [{"priority": p} for p in PRIORITIES] + [{"impact": "high", "urgency": "medium"}]
            )
        )
        events = [event("ticket.created", ticket, 0, at, department=department,
                        service=ORDERED[department][0], subject="Sag",
                        requester={"name": "B"}, **graded)]  # fmt: skip
        for seq, (type_, fields) in enumerate(draw(st.lists(st.sampled_from(CHANGES), max_size=8))):
            at += timedelta(minutes=draw(st.integers(0, 300)))
            events.append(event(type_, ticket, seq + 1, at, **fields))
        arriving += [parse_event(json.dumps(e)) for e in events]
    arriving.sort(key=lambda e: e.occurred_at)
    swaps = draw(st.lists(st.booleans(), min_size=len(arriving), max_size=len(arriving)))
    for i in range(len(arriving) - 1):  # neighbours swap: late events
        if swaps[i]:
            arriving[i], arriving[i + 1] = arriving[i + 1], arriving[i]
    cuts = sorted(draw(st.lists(st.integers(1, len(arriving)), max_size=4, unique=True)))
    return [
        Batch(arriving[a:b], draw(st.booleans()), draw(st.booleans()))
        for a, b in zip([0, *cuts], [*cuts, len(arriving)], strict=True)
        if a < b
    ]


@pytest.fixture
async def migrated(db: asyncpg.Connection) -> asyncpg.Connection:
    """The test's own schema (tests/conftest.py), migrated."""
    await migrate(db)
    return db


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batches=lives())
async def test_every_open_clock_carries_its_tickets_current_priority_and_department(
    migrated: asyncpg.Connection, batches: list[Batch]
) -> None:
    await migrated.execute(f"TRUNCATE {', '.join(await recorded_tables(migrated))}")
    store = PostgresRecordingStore(migrated)
    recorders = (Recorder(METER, store), Recorder(METER, store))
    now = MONDAY + timedelta(days=3)
    for batch in batches:
        now += timedelta(minutes=1)
        meter = TURNED if batch.turned else METER
        await recorders[batch.second].record(batch.events, now, meter=meter)
        assert [dict(row) for row in await migrated.fetch(DIFFERING)] == []
    # Each priority's worklist, read along the clocks' priority, lists the tickets of
    # that priority with an open clock.
    for priority in PRIORITIES:
        expected = await migrated.fetch(OPEN_OF_PRIORITY, priority)
        listed = await PostgresReads(migrated).worklist(
            WorklistQuery(now=now, limit=50, priority=priority)
        )
        assert sorted(key.ticket_id for key in listed) == [row[0] for row in expected]
    # And each department's, read along the clocks' department.
    for department in sorted(ORDERED):
        expected = await migrated.fetch(OPEN_OF_DEPARTMENT, department)
        listed = await PostgresReads(migrated).worklist(
            WorklistQuery(now=now, limit=50, department=department)
        )
        assert sorted(key.ticket_id for key in listed) == [row[0] for row in expected]


async def test_a_raised_priority_moves_the_open_clocks_and_not_the_stopped_ones(
    migrated: asyncpg.Connection,
) -> None:
    recorder = Recorder(METER, PostgresRecordingStore(migrated))
    created = ev("ticket.created", 0, 0, department="okf", service="opus-loen", priority="P3",
                 subject="Løn", requester={"name": "B"})  # fmt: skip
    await recorder.record([created, ev("ticket.responded", 1, 5)], at(6))
    await recorder.record([ev("ticket.priority_changed", 2, 10, priority="P1")], at(11))
    rows = await migrated.fetch(
        "SELECT clock_key, priority, stopped_at IS NULL AS open FROM clocks"
    )
    clocks = {row["clock_key"]: (row["priority"], row["open"]) for row in rows}
    assert clocks["response"] == ("P3", False)  # met at P3, before the change
    assert clocks["resolution"] == ("P1", True)
    assert await migrated.fetchval("SELECT priority FROM tickets") == "P1"
    assert await migrated.fetch(DIFFERING) == []


def at(minutes: int) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def ev(type_: str, seq: int, minutes: int, **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, "P-1", seq, at(minutes), **fields)))


async def recorded_tables(db: asyncpg.Connection) -> list[str]:
    """Every table of the schema but the migrations' record."""
    rows = await db.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        " AND tablename <> 'schema_migrations'"
    )
    return [f'"{row["tablename"]}"' for row in rows]
