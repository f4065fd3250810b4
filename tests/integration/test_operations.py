"""The operations gauges and ticket state read from the real PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.ops.gauges import month_start, read_store
from engine.ops.ticket_state import JSON, measure_ticket
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from engine.store.recording import StoppedClock
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)  # office hours, Monday
CONFIG = load_config(EXAMPLE_CONFIG)
METER = ClockMeter(CONFIG)


def ev(type_: str, ticket: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    at = MONDAY + timedelta(minutes=minutes)
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def created(ticket: str, minutes: float = 0) -> TicketEvent:
    # ØKF's Opus Løn, P1: response 15 minutes, resolution 2 hours, on the office calendar;
    # warnings at 0.5, 0.75 and 0.9 of the target.
    return ev("ticket.created", ticket, 0, minutes, department="okf", service="opus-loen",
              priority="P1", subject="Løn fejler", requester={"name": "B"})  # fmt: skip


async def ticket_state(db: asyncpg.Connection, ticket_id: str, now: datetime) -> JSON | None:
    """The ticket's state as the HTTP port makes it: rows read, then measured."""
    rows = await PostgresReads(db).ticket(ticket_id)
    return None if rows is None else measure_ticket(METER, ticket_id, rows, now)


@pytest.fixture
async def recorder(db: asyncpg.Connection) -> Recorder:
    await migrate(db)
    return Recorder(METER, PostgresRecordingStore(db))


async def test_a_batch_reports_its_new_events_and_the_clocks_it_stopped(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    now = MONDAY + timedelta(minutes=30)
    first = await recorder.record([created("S-1")], now)
    assert dict(first.kinds) == {("ticket.created", "web"): 1}
    assert first.stopped == []
    responded = ev("ticket.responded", "S-1", 1, 5)
    outcome = await recorder.record([responded], now)
    assert outcome.stopped == [StoppedClock("response", "sla", 300.0)]
    again = await recorder.record([responded], now)  # a duplicate stops nothing again
    assert (again.duplicates, dict(again.kinds), again.stopped) == (1, {}, [])
    assert again.duplicate_ids == [str(responded.event_id)]
    # Twice in one batch and new: the first copy is recorded, the second is the duplicate.
    working = ev("ticket.status_changed", "S-1", 2, 6, status="in_progress")
    twice = await recorder.record([working, responded, working], now)
    assert twice.recorded == 1
    assert twice.duplicate_ids == [str(responded.event_id), str(working.event_id)]


async def test_gauges_count_open_at_risk_and_this_months_stopped_clocks(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    now = MONDAY + timedelta(minutes=20)
    await recorder.record([
        created("A"),                                      # response breached, still open
        created("B", 10),                                  # response at 10 of 15 minutes
        created("C"), ev("ticket.responded", "C", 1, 5),   # response met
        ev("ticket.status_changed", "C", 2, 10, status="pending_customer"),  # paused
        created("D"), ev("ticket.responded", "D", 1, 16),  # response breached, stopped
    ], now)  # fmt: skip
    samples = await read_store(PostgresReads(db), now.astimezone(UTC), CPH)
    okf = ("okf",)
    assert sorted(samples["sla_open_clocks"]) == [
        ((*okf, "resolution", "sla", "paused"), 1),
        ((*okf, "resolution", "sla", "running"), 3),
        ((*okf, "response", "sla", "breached"), 1),
        ((*okf, "response", "sla", "running"), 1),
        # The update cycles from the first responses: C's next waits with the ticket.
        ((*okf, "update", "sla", "paused"), 1),
        ((*okf, "update", "sla", "running"), 1),
    ]
    # B's response is past its first warning (7.5 minutes); A's is past the target.
    assert sorted(samples["sla_clocks_at_risk"]) == [
        ((*okf, "resolution", "sla"), 0),
        ((*okf, "response", "sla"), 1),
        ((*okf, "update", "sla"), 0),
    ]
    # Deadlines ahead: B's response at 09:25; the resolutions of A, B and D at 11:00,
    # 11:10 and 11:00 (two hours of office time from their creation).
    breaching = samples["sla_clocks_breaching_within"]
    within = {(metric, window): count for (_, metric, _, window), count in breaching}
    assert within == {
        ("response", "15m"): 1, ("response", "1h"): 1, ("response", "4h"): 1,
        ("response", "1d"): 1, ("resolution", "15m"): 0, ("resolution", "1h"): 0,
        ("resolution", "4h"): 3, ("resolution", "1d"): 3,
        # D's update cycle from 09:16 (P1: an update every hour) is due at 10:16.
        ("update", "15m"): 0, ("update", "1h"): 1, ("update", "4h"): 1, ("update", "1d"): 1,
    }  # fmt: skip
    assert sorted(samples["sla_month_stopped_clocks"]) == [
        ((*okf, "response", "sla", "breached"), 1),
        ((*okf, "response", "sla", "met"), 1),
        ((*okf, "update", "sla", "met"), 1),  # C's, 09:05 to 09:10
    ]
    # Nothing fired yet: A's, B's and D's responses each have a step due (D's fell due
    # before it stopped); no resolution is halfway.
    assert samples["sla_steps_due"] == [((), 3)]
    # Clocks stopped before this month are not this month's.
    next_month = await read_store(PostgresReads(db), datetime(2026, 12, 2, tzinfo=UTC), CPH)
    assert next_month["sla_month_stopped_clocks"] == []


async def test_gauges_count_the_outbox_by_channel(db: asyncpg.Connection) -> None:
    await migrate(db)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    for channel, status, age_s in [("email", "pending", 300), ("email", "pending", 60),
                                   ("webhook", "failed", 900), ("amqp", "sent", 3600)]:  # fmt: skip
        await db.execute(
            "INSERT INTO outbox (notice_id, ticket_id, clock_key, step, channel, recipient,"
            " recipient_name, subject, body, payload, created_at, status, next_attempt_at)"
            " VALUES ($1, 'T', 'response', 1.0, $2, 'r', 'R', 's', 'b', '{}', $3, $4, $3)",
            uuid4(), channel, now - timedelta(seconds=age_s), status,
        )  # fmt: skip
    samples = await read_store(PostgresReads(db), now, CPH)
    assert sorted(samples["sla_outbox_pending"]) == [(("email",), 2), (("webhook",), 0)]
    assert sorted(samples["sla_outbox_failed"]) == [(("email",), 0), (("webhook",), 1)]
    assert sorted(samples["sla_outbox_oldest_pending_age_seconds"]) == [
        (("email",), 300.0),
        (("webhook",), 0.0),
    ]


def test_the_month_starts_at_local_midnight() -> None:
    # 00:30 on 1 December in Copenhagen is still November in UTC.
    start = month_start(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), CPH)
    assert start == datetime(2026, 12, 1, tzinfo=CPH)


async def test_ticket_state_measures_the_clocks_now_with_the_steps_fired(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created("T-1")], MONDAY + timedelta(minutes=1))
    await db.execute(
        "INSERT INTO escalation_steps (ticket_id, clock_key, step, tier, metric,"
        " agreement_kind, department, service, priority, target_s, due_at, fired_at)"
        " VALUES ('T-1', 'response', 0.5, 'operational', 'response', 'sla', 'okf',"
        " 'opus-loen', 'P1', 900, $1, $1)",
        MONDAY + timedelta(minutes=7.5),
    )
    state = await ticket_state(db, "T-1", MONDAY + timedelta(minutes=9))
    assert state is not None
    assert (state["department"], state["service"], state["priority"]) == ("okf", "opus-loen", "P1")
    response = next(c for c in state["clocks"] if c["metric"] == "response")
    # Measured at the request, not at the last event: 9 of 15 minutes used.
    assert (response["state"], response["elapsed_s"], response["target_s"]) == ("running", 540, 900)
    assert response["fraction"] == pytest.approx(0.6)
    assert response["deadline"] == (MONDAY + timedelta(minutes=15)).isoformat()
    steps = {step["fraction"]: step for step in response["steps"]}
    assert steps[0.5]["status"] == "fired"
    assert steps[0.75] == {"fraction": 0.75, "tier": "operational", "fired_at": None,
                           "status": "pending",
                           "due_at": (MONDAY + timedelta(minutes=11.25)).isoformat()}  # fmt: skip
    assert await ticket_state(db, "NO-SUCH", MONDAY) is None


async def test_ticket_state_of_a_ticket_waiting_for_its_creation(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([ev("ticket.responded", "W-1", 1, 5)], MONDAY)
    state = await ticket_state(db, "W-1", MONDAY)
    assert state is not None
    assert (state["waiting_for"], state["clocks"], state["events"]) == ("ticket.created", [], 1)
