"""The read ports and the personal-data purge: the same cases on PostgreSQL and in memory."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from engine.store.memory.personal_data import MemoryPersonalData
from engine.store.memory.reads import MemoryReads
from engine.store.memory.tables import ClockRow, EventRow, NoticeRow, StepRow, Tables, TicketRow
from engine.store.migrate import migrate
from engine.store.personal_data import PersonalDataStore, Purged
from engine.store.postgres.personal_data import PostgresPersonalData
from engine.store.postgres.reads import PostgresReads
from engine.store.reads import (
    ChannelBacklog,
    ClockGroup,
    ReadStore,
    StoredClock,
    WorklistKey,
    WorklistQuery,
)
from tests.contract.read_seeding import MemorySeeder, PostgresSeeder, Seeder
from tests.services import own_schema

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
WINDOWS = [timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(days=1)]
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


@dataclass
class Store:
    """One adapter of each port on the same tables, and a way to fill them."""

    reads: ReadStore
    personal_data: PersonalDataStore
    seed: Seeder


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        tables = Tables()
        yield Store(MemoryReads(tables), MemoryPersonalData(tables), MemorySeeder(tables))
        return
    async with own_schema("t") as url:
        connection = await asyncpg.connect(url)
        try:
            await migrate(connection)
            yield Store(
                PostgresReads(connection),
                PostgresPersonalData(connection),
                PostgresSeeder(connection),
            )
        finally:
            await connection.close()


def ticket(ticket_id: str, created_at: datetime | None = None, **fields: Any) -> TicketRow:
    return TicketRow(ticket_id, created_at=created_at, updated_at=NOW - timedelta(days=60),
                     **fields)  # fmt: skip


def clock(ticket_id: str, key: str, **fields: Any) -> ClockRow:
    values: dict[str, Any] = {
        "metric": key, "agreement_kind": "sla", "agreement_key": "sla:okf:opus-loen",
        "department": "okf", "service": "opus-loen", "function": "servicedesk",
        "priority": "P1", "calendar": "office", "target_s": 900.0, "state": "running",
        "running": True, "elapsed_s": 60.0, "fraction": 0.1, "started_at": NOW - 60 * MINUTE,
        "stopped_at": None, "deadline": None, "next_due_at": None,
        "measured_at": NOW - MINUTE, "steps": [0.5, 1.0], "tiers": ["lead", "manager"],
    }  # fmt: skip
    values.update(fields)
    return ClockRow(ticket_id, key, **values)


def event(ticket_id: str, type_: str, at: datetime, event_id: UUID | None = None,
          **payload: Any) -> EventRow:  # fmt: skip
    body = {"type": type_, "ticket_id": ticket_id, **payload}
    return EventRow(event_id or uuid4(), ticket_id, type_, at, json.dumps(body))


def notice(channel: str, status: str, age: timedelta) -> NoticeRow:
    return NoticeRow(uuid4(), "T-1", "response", 0.5, channel, "r@x", "R", "s", "b", {},
                     created_at=NOW - age, next_attempt_at=NOW, status=status)  # fmt: skip


def group(metric: str, bucket: str, clocks: int, at_risk: int, breaching: tuple[int, ...],
          kind: str = "sla") -> ClockGroup:  # fmt: skip
    return ClockGroup("okf", metric, kind, bucket, clocks, at_risk, breaching)


async def test_gauges_count_the_clocks_by_bucket_risk_and_time_to_breach(store: Store) -> None:
    await store.seed.add(
        # Running, past its first warning, due within every window.
        clock("T-1", "response", deadline=NOW + 10 * MINUTE, next_due_at=NOW - 5 * MINUTE,
              step_due_at=[NOW - 5 * MINUTE, NOW + 10 * MINUTE]),
        # Due at the end of the first window: within it.
        clock("T-6", "response", deadline=NOW + 15 * MINUTE, steps=[1.0],
              step_due_at=[NOW + 15 * MINUTE]),
        # Running, short of its first warning, due within 4 hours.
        clock("T-1", "resolution", deadline=NOW + 120 * MINUTE, next_due_at=NOW + 60 * MINUTE,
              step_due_at=[NOW + 60 * MINUTE]),
        # Paused past its first warning: at risk by its fraction.
        clock("T-2", "response", running=False, state="paused", fraction=0.6),
        # Running past its deadline: breached now, whatever its state says.
        clock("T-2", "resolution", deadline=NOW - MINUTE, next_due_at=NOW - 30 * MINUTE,
              step_due_at=[NOW - 30 * MINUTE]),
        clock("T-3", "response", running=False, state="breached"),
        clock("T-3", "resolution", running=False, state="met", stopped_at=NOW - 24 * 60 * MINUTE),
        # Stopped last month: not this month's.
        clock("T-4", "response", running=False, state="breached",
              stopped_at=datetime(2026, 10, 15, tzinfo=UTC)),
        # Running without a deadline: neither at risk nor breaching.
        clock("T-4", "resolution", step_due_at=[NOW - 60 * MINUTE], steps=[0.5]),
        # Only a step at the target: never at risk, however late.
        clock("T-5", "response", agreement_kind="ola", deadline=NOW + 30 * MINUTE,
              steps=[1.0], step_due_at=[NOW - MINUTE]),
    )  # fmt: skip
    counts = await store.reads.gauge_counts(NOW, MONTH, WINDOWS)
    assert sorted(counts.clocks, key=str) == sorted([
        group("response", "open_running", 2, 1, (2, 2, 2, 2)),
        group("resolution", "open_running", 2, 0, (0, 0, 1, 1)),
        group("response", "open_paused", 1, 1, (0, 0, 0, 0)),
        group("resolution", "open_breached", 1, 0, (0, 0, 0, 0)),
        group("response", "open_breached", 1, 0, (0, 0, 0, 0)),
        group("resolution", "met", 1, 0, (0, 0, 0, 0)),
        group("response", "open_running", 1, 0, (0, 1, 1, 1), kind="ola"),
    ], key=str)  # fmt: skip
    assert counts.steps_due == 2  # T-1's response and T-2's resolution


async def test_gauges_count_the_unsent_notices_by_channel(store: Store) -> None:
    await store.seed.add(
        notice("email", "pending", 300 * timedelta(seconds=1)),
        notice("email", "pending", 60 * timedelta(seconds=1)),
        notice("email", "failed", 30 * timedelta(seconds=1)),
        notice("webhook", "failed", 900 * timedelta(seconds=1)),
        notice("amqp", "sent", 3600 * timedelta(seconds=1)),
    )
    counts = await store.reads.gauge_counts(NOW, MONTH, WINDOWS)
    assert sorted(counts.outbox, key=lambda backlog: backlog.channel) == [
        ChannelBacklog("email", 2, NOW - timedelta(seconds=300), 1),
        ChannelBacklog("webhook", 0, None, 1),
    ]
    assert (counts.clocks, counts.steps_due) == ((), 0)


async def test_a_ticket_is_read_with_its_events_agreements_and_fired_steps(store: Store) -> None:
    agreements = {"sla:okf:opus-loen": {"kind": "sla", "targets": {"P1": 900}}}
    fired_at = NOW - 10 * MINUTE
    step: dict[str, Any] = {"tier": "lead", "metric": "response", "agreement_kind": "sla",
            "department": "okf", "service": "opus-loen", "priority": "P1", "target_s": 900.0,
            "due_at": fired_at}  # fmt: skip
    await store.seed.add(
        ticket("T-1", NOW - 60 * MINUTE, agreements=agreements),
        ticket("T-2", NOW),
        event("T-1", "ticket.created", NOW - 60 * MINUTE, subject="Løn"),
        event("T-1", "ticket.responded", NOW - 50 * MINUTE),
        event("T-2", "ticket.created", NOW),
        StepRow("T-1", "resolution", 0.5, fired_at=fired_at, **step),
        StepRow("T-1", "response", 1.0, fired_at=fired_at, status="superseded", **step),
        StepRow("T-1", "response", 0.5, fired_at=fired_at, **step),
        StepRow("T-2", "response", 0.5, fired_at=fired_at, **step),
    )
    assert await store.reads.ticket("T-9") is None
    rows = await store.reads.ticket("T-1")
    assert rows is not None
    assert json.loads(rows.agreements) == agreements
    assert sorted(json.loads(payload)["type"] for payload in rows.payloads) == [
        "ticket.created",
        "ticket.responded",
    ]
    assert rows.fired == [
        ("resolution", 0.5, fired_at, "fired"),
        ("response", 0.5, fired_at, "fired"),
        ("response", 1.0, fired_at, "superseded"),
    ]


async def test_tickets_without_steps_are_paged_by_id(store: Store) -> None:
    await store.seed.add(
        clock("T-1", "response", steps=[]),
        clock("T-2", "response"),
        clock("T-3", "response", steps=[]),
        clock("T-3", "resolution", steps=[]),
        clock("T-5", "response", steps=[]),
    )
    assert await store.reads.tickets_without_steps("", 2) == ["T-1", "T-3"]
    assert await store.reads.tickets_without_steps("T-3", 2) == ["T-5"]
    assert await store.reads.tickets_without_steps("T-5", 2) == []


START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 8, tzinfo=UTC)


async def period_history(store: Store) -> None:
    """A: in the window; B: in it, another department; C: before it; D: never created;
    E: created at its end."""
    await store.seed.add(
        ticket("A", START), ticket("B", START + 24 * 60 * MINUTE), ticket("C", START - MINUTE),
        ticket("D"), ticket("E", END),
        clock("A", "response", state="met", running=False, deadline=START + 15 * MINUTE),
        clock("A", "resolution"),
        clock("B", "response", department="hr", function="payroll"),
        clock("C", "response"), clock("D", "response"), clock("E", "response"),
    )  # fmt: skip


async def test_the_clocks_of_a_period_are_those_of_its_tickets(store: Store) -> None:
    await period_history(store)
    read = [c async for c in store.reads.clocks_of_period(START, END, None)]
    assert [(c.ticket_id, c.metric) for c in read] == [
        ("A", "resolution"),
        ("A", "response"),
        ("B", "response"),
    ]
    assert read[1] == StoredClock(
        "A", "okf", "opus-loen", "P1", "response", "sla", "servicedesk", "met", False,
        START + 15 * MINUTE, 60.0, 900.0,
    )  # fmt: skip
    hr = [c async for c in store.reads.clocks_of_period(START, END, "hr")]
    assert [(c.ticket_id, c.department, c.function) for c in hr] == [("B", "hr", "payroll")]
    assert [c async for c in store.reads.clocks_of_period(START, END, "nobody")] == []


async def test_the_events_of_a_period_are_all_those_of_its_tickets_in_order(store: Store) -> None:
    await period_history(store)
    same = START + 60 * MINUTE
    first, second = sorted([uuid4(), uuid4()])
    await store.seed.add(
        event("A", "ticket.commented", START - 5 * MINUTE, n=1),  # before its creation
        event("A", "ticket.created", START, n=2),
        event("B", "ticket.created", same, second, n=4),
        event("A", "ticket.responded", same, first, n=3),
        event("A", "ticket.commented", END + MINUTE, n=5),  # after the window
        event("C", "ticket.commented", START + MINUTE, n=0),  # a ticket of before
        event("D", "ticket.commented", START + MINUTE, n=0),
        event("E", "ticket.created", END, n=0),
    )
    payloads = [json.loads(p) async for p in store.reads.events_of_period(START, END)]
    assert [payload["n"] for payload in payloads] == [1, 2, 3, 4, 5]
    assert payloads[1] == {"type": "ticket.created", "ticket_id": "A", "n": 2}


async def test_the_purge_blanks_the_requesters_data_of_tickets_closed_long_enough(
    store: Store,
) -> None:
    cutoff = NOW - 30 * 24 * 60 * MINUTE
    long_ago, lately = cutoff - 60 * MINUTE, cutoff + 60 * MINUTE
    old = NOW - 90 * 24 * 60 * MINUTE
    await store.seed.add(
        ticket("OLD", old, closed_at=long_ago - MINUTE),
        ticket("OLDER", old, closed_at=long_ago - 2 * MINUTE),
        ticket("LATE", old, closed_at=lately),  # closed, not long enough
        ticket("OPEN", old),
        # Purged since it was last recorded to: done.
        ticket("DONE", old, closed_at=long_ago, personal_data_purged_at=NOW - DAY * 59),
        # Purged, then recorded to (a late comment): due again.
        TicketRow("AGAIN", created_at=old, closed_at=long_ago, updated_at=NOW - MINUTE,
                  personal_data_purged_at=long_ago),
    )  # fmt: skip
    requester = {"name": "Jens", "phone": "12345678"}
    for ticket_id in ("OLD", "OLDER", "LATE", "OPEN", "DONE", "AGAIN"):
        await store.seed.add(
            event(ticket_id, "ticket.created", old, subject="Løn", requester=requester,
                  body="Jens' løn"),
            event(ticket_id, "ticket.commented", old + MINUTE, author="Agent A", body="Ring"),
            event(ticket_id, "ticket.responded", old + MINUTE, agent="Agent A"),
            event(ticket_id, "ticket.rated", old + 2 * MINUTE, score=2, comment="Jens er sur"),
        )  # fmt: skip
    # A rating without a comment holds nothing of the requester's to remove.
    await store.seed.add(event("OLDER", "ticket.rated", old + 3 * MINUTE, score=4))

    # The oldest closed first: OLDER, then OLD, then AGAIN.
    assert await store.personal_data.purge_personal_data(cutoff, 1, "[x]", NOW) == Purged(1, 3)
    assert await payloads_of(store, "OLD") == await payloads_of(store, "LATE")
    assert await store.personal_data.purge_personal_data(cutoff, 5, "[x]", NOW) == Purged(2, 6)
    assert await store.personal_data.purge_personal_data(cutoff, 5, "[x]", NOW) == Purged(0, 0)

    for ticket_id in ("OLD", "OLDER", "AGAIN"):
        purged = await payloads_of(store, ticket_id)
        assert purged["ticket.created"] == {
            "type": "ticket.created", "subject": "[x]"
        }  # fmt: skip
        assert purged["ticket.commented"]["body"] == ""
        assert purged["ticket.commented"]["author"] == "Agent A"
        assert purged["ticket.responded"]["agent"] == "Agent A"
        assert purged["ticket.rated"]["score"] in (2, 4)
        assert "comment" not in purged["ticket.rated"]
    for ticket_id in ("LATE", "OPEN", "DONE"):
        kept = await payloads_of(store, ticket_id)
        assert kept["ticket.created"]["requester"] == requester
        assert kept["ticket.commented"]["body"] == "Ring"
        assert kept["ticket.rated"]["comment"] == "Jens er sur"


async def payloads_of(store: Store, ticket_id: str) -> dict[str, Any]:
    """The ticket's events' payloads by type, without its id (to compare tickets)."""
    rows = await store.reads.ticket(ticket_id)
    assert rows is not None
    found = {}
    for text in rows.payloads:
        payload = json.loads(text)
        del payload["ticket_id"]
        found[payload["type"]] = payload
    return found


def worklist_query(**fields: Any) -> WorklistQuery:
    return WorklistQuery(now=NOW, limit=fields.pop("limit", 50), **fields)


async def worklist_tickets(store: Store) -> None:
    """Five tickets of two departments: W1 overdue, W2 due in 30 minutes, W3 due in 3 hours
    (assigned to second-line, P2), W4 paused (hr), W5 resolved (every clock stopped), and a
    clock whose ticket has no row (not listed)."""
    await store.seed.add(
        ticket("W1", NOW - DAY, department="okf", service="opus-loen", priority="P1",
               assigned_function="servicedesk"),
        ticket("W2", NOW - DAY, department="okf", service="opus-loen", priority="P1"),
        ticket("W3", NOW - DAY, department="okf", service="kmd-sag", priority="P2",
               assigned_function="second_line", assigned_team="okf-team"),
        ticket("W4", NOW - DAY, department="hr", service="opus-loen", priority="P1"),
        ticket("W5", NOW - DAY, department="okf", service="opus-loen", priority="P1"),
        clock("W1", "response", state="met", running=False, stopped_at=NOW - 23 * 60 * MINUTE),
        clock("W1", "resolution", deadline=NOW - 5 * MINUTE),
        clock("W2", "response", deadline=NOW + 30 * MINUTE),
        clock("W2", "resolution", deadline=NOW + 200 * MINUTE),
        clock("W3", "resolution", deadline=NOW + 180 * MINUTE, priority="P2", service="kmd-sag"),
        clock("W3", "ola:1:second_line", metric="resolution", agreement_kind="ola",
              function="second_line", deadline=NOW + 240 * MINUTE, priority="P2",
              service="kmd-sag"),
        clock("W4", "resolution", state="paused", running=False, department="hr"),
        clock("W5", "resolution", state="breached", running=False, stopped_at=NOW - MINUTE),
        clock("W5", "response", state="met", running=False, stopped_at=NOW - DAY),
        clock("NOROW", "resolution", deadline=NOW + MINUTE),
    )  # fmt: skip


async def listed(store: Store, **fields: Any) -> list[str]:
    return [key.ticket_id for key in await store.reads.worklist(worklist_query(**fields))]


async def test_the_worklist_lists_open_tickets_by_next_deadline(store: Store) -> None:
    await worklist_tickets(store)
    keys = await store.reads.worklist(worklist_query())
    # Overdue first, then the nearest deadline; a ticket without a running one last.
    assert keys == [
        WorklistKey(NOW - 5 * MINUTE, "W1"),
        WorklistKey(NOW + 30 * MINUTE, "W2"),
        WorklistKey(NOW + 180 * MINUTE, "W3"),
        WorklistKey(None, "W4"),
    ]
    assert await listed(store, scope="all") == ["W1", "W2", "W3", "W4", "W5"]


async def test_the_worklist_filters_by_ticket(store: Store) -> None:
    await worklist_tickets(store)
    assert await listed(store, department="hr") == ["W4"]
    assert await listed(store, service="kmd-sag") == ["W3"]
    assert await listed(store, priority="P2") == ["W3"]
    assert await listed(store, function="second_line") == ["W3"]
    assert await listed(store, team="okf-team") == ["W3"]
    assert await listed(store, team="other-team") == []
    assert await listed(store, department="okf", priority="P1") == ["W1", "W2"]
    assert await listed(store, department="nobody") == []


async def test_the_worklist_filters_by_clock(store: Store) -> None:
    await worklist_tickets(store)
    # Running past its deadline is breached now, whatever its stored state says.
    assert await listed(store, state="breached") == ["W1"]
    assert await listed(store, state="running") == ["W2", "W3"]
    assert await listed(store, state="paused") == ["W4"]
    assert await listed(store, state="met") == []  # stopped clocks are not open
    assert await listed(store, state="met", scope="all") == ["W1", "W5"]
    assert await listed(store, state="breached", scope="all") == ["W1", "W5"]
    assert await listed(store, breached=True) == ["W1"]
    assert await listed(store, breached=False) == ["W2", "W3", "W4"]
    assert await listed(store, metric="response") == ["W2"]
    # Breaching within: running, not breached yet, the deadline within the span.
    assert await listed(store, breaching_within=timedelta(hours=1)) == ["W2"]
    assert await listed(store, breaching_within=timedelta(hours=3)) == ["W2", "W3"]
    # The next deadline is that of the chosen clocks: W2's resolution, not its response.
    keys = await store.reads.worklist(worklist_query(metric="resolution"))
    assert WorklistKey(NOW + 200 * MINUTE, "W2") in keys


async def test_the_worklist_pages_after_a_key_and_across_inserts(store: Store) -> None:
    await worklist_tickets(store)
    first = await store.reads.worklist(worklist_query(limit=2))
    assert [key.ticket_id for key in first] == ["W1", "W2"]
    # A ticket inserted before the cursor moves nothing after it; one after it is listed.
    await store.seed.add(
        ticket("W0", NOW - DAY), clock("W0", "resolution", deadline=NOW - 60 * MINUTE),
        ticket("W9", NOW - DAY), clock("W9", "resolution", deadline=NOW + 190 * MINUTE),
    )  # fmt: skip
    second = await store.reads.worklist(worklist_query(limit=2, after=first[-1]))
    assert [key.ticket_id for key in second] == ["W3", "W9"]
    third = await store.reads.worklist(worklist_query(limit=2, after=second[-1]))
    assert third == [WorklistKey(None, "W4")]
    # After a row without a deadline, only later ids without one follow.
    assert await store.reads.worklist(worklist_query(after=third[-1])) == []
    assert await listed(store, after=WorklistKey(None, "W")) == ["W4"]


async def test_the_rows_of_several_tickets_are_read_at_once(store: Store) -> None:
    await worklist_tickets(store)
    await store.seed.add(
        event("W1", "ticket.created", NOW - DAY, n=1),
        event("W1", "ticket.responded", NOW - 23 * 60 * MINUTE, n=2),
        event("W2", "ticket.created", NOW - DAY, n=3),
        StepRow("W2", "response", 0.5, "lead", "response", "sla", "okf", "opus-loen", "P1",
                900.0, NOW - MINUTE, NOW - MINUTE),
    )  # fmt: skip
    rows = await store.reads.tickets(["W1", "W2", "missing"])
    assert sorted(rows) == ["W1", "W2"]
    assert sorted(json.loads(p)["n"] for p in rows["W1"].payloads) == [1, 2]
    assert [json.loads(p)["n"] for p in rows["W2"].payloads] == [3]
    assert rows["W1"].fired == []
    assert rows["W2"].fired == [("response", 0.5, NOW - MINUTE, "fired")]
