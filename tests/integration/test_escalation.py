"""Firing steps against the real PostgreSQL: once each, in order, undone by late events."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from engine.config import load_config
from engine.daemon import measure_unstepped
from engine.events import TicketEvent, parse_event
from engine.intake.publish import publish_events
from engine.intake.recorder import Recorder
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate, migrations
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG, migrated_up_to, unbudgeted
from tests.integration.conftest import RunningEngine
from tests.services import AMQP_URL, poll
from tests.streams import CPH, event, lines

pytestmark = pytest.mark.integration
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)  # office hours, Monday
CONFIG = unbudgeted(load_config(EXAMPLE_CONFIG))  # each step's notices, alone


def ev(type_: str, seq: int, at: datetime, ticket: str = "E-1", **fields: Any) -> TicketEvent:
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def created(ticket: str = "E-1", priority: str = "P1", at: datetime = MONDAY) -> TicketEvent:
    # ØKF's Opus Løn, P1: response 15 minutes, resolution 2 hours, on the office calendar.
    return ev("ticket.created", 0, at, ticket, department="okf", service="opus-loen",
              priority=priority, subject="Løn fejler", requester={"name": "B"})  # fmt: skip


@pytest.fixture
async def recorder(db: asyncpg.Connection) -> Recorder:
    await migrate(db)
    return Recorder(ClockMeter(CONFIG), PostgresRecordingStore(db))


async def fire(db: asyncpg.Connection, now: datetime) -> list[tuple[str, str, float]]:
    firing = await fire_due(PostgresFiringStore(db), Composer(CONFIG), now, 500)
    return [(s.ticket_id, s.clock_key, s.step) for s in firing.fired]


def after(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


async def test_due_steps_fire_once_in_order_with_their_notices(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created()], after(1))
    assert await fire(db, after(12)) == [("E-1", "response", 0.5), ("E-1", "response", 0.75)]
    assert await fire(db, after(12)) == []
    # Each within CATCH_UP_LATE of its due instant: told as it fires, not as a catch-up.
    assert await fire(db, after(16)) == [("E-1", "response", 0.9), ("E-1", "response", 1.0)]
    assert await fire(db, after(31)) == [("E-1", "response", 1.5), ("E-1", "response", 2.0)]
    rows = await db.fetch("SELECT step, due_at, fired_at FROM escalation_steps ORDER BY due_at")
    assert [r["step"] for r in rows] == [0.5, 0.75, 0.9, 1.0, 1.5, 2.0]
    assert rows[0]["due_at"] == after(7.5)
    clock = await db.fetchrow("SELECT state, next_due_at FROM clocks WHERE clock_key = 'response'")
    assert clock is not None
    assert clock["state"] == "breached"
    assert clock["next_due_at"] is None
    notices = await db.fetch("SELECT notice_id, step, channel, recipient FROM outbox")
    assert len({n["notice_id"] for n in notices}) == len(notices)
    breach = sorted((n["channel"], n["recipient"]) for n in notices if n["step"] == 1.0)
    # The department's tactical side (the system owner), and the provider's: unassigned,
    # the helpdesk lead, and ØKF's customer team.
    assert breach == [
        ("amqp", "escalation.tactical.okf.provider"),
        ("email", "servicedesk-leder@koncernservice.kk.dk"),
        ("email", "systemejer-opus@okf.kk.dk"),
        ("email", "team-okf@koncernservice.kk.dk"),
        ("webhook", "https://hooks.koncernservice.kk.example/servicedesk/eskalering"),
    ]
    warning = sorted((n["channel"], n["recipient"]) for n in notices if n["step"] == 0.5)
    assert warning == [  # the provider side alone
        ("amqp", "escalation.operational.okf.provider"),
        ("email", "servicedesk-leder@koncernservice.kk.dk"),
        ("email", "team-okf@koncernservice.kk.dk"),
        ("webhook", "https://hooks.koncernservice.kk.example/servicedesk/eskalering"),
    ]


async def test_steps_due_while_nobody_looked_fire_together_in_due_order(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created()], after(1))
    fired = await fire(db, after(24 * 60))  # a day later: every response step is past
    response = [step for _, clock, step in fired if clock == "response"]
    assert response == [0.5, 0.75, 0.9, 1.0, 1.5, 2.0]


async def test_a_stop_that_occurred_before_a_step_but_arrived_after_its_instant_cancels_it(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created()], after(1))
    # The response happened at minute 5; it arrives at minute 20, after every step's instant.
    await recorder.record([ev("ticket.responded", 1, after(5))], after(20))
    assert await fire(db, after(20)) == []


async def test_an_event_arriving_after_its_step_fired_marks_the_step_superseded(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created()], after(1))
    assert await fire(db, after(12)) == [("E-1", "response", 0.5), ("E-1", "response", 0.75)]
    # Responded at minute 10: after the 0.5 step fell due (7.5), before 0.75 (11.25).
    await recorder.record([ev("ticket.responded", 1, after(10))], after(13))
    rows = await db.fetch("SELECT step, status, superseded_at FROM escalation_steps ORDER BY step")
    assert [(r["step"], r["status"]) for r in rows] == [(0.5, "fired"), (0.75, "superseded")]
    assert rows[1]["superseded_at"] == after(13)
    later = await fire(db, after(59))
    assert [s for s in later if s[1] == "response"] == []  # stopped: nothing more to fire


async def test_a_step_undone_by_a_late_pause_stands_again_when_the_late_resume_arrives(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    # A backlog after an outage: the pause arrives, then, in a later batch, the resume.
    await recorder.record([created()], after(1))
    assert ("E-1", "resolution", 0.5) in await fire(db, after(61))  # 2 h target: due at 60
    notices = await db.fetchval("SELECT count(*) FROM outbox WHERE clock_key = 'resolution'")
    await recorder.record([ev("ticket.status_changed", 1, after(30),
                                  status="pending_customer")], after(62))  # fmt: skip
    status = "SELECT status FROM escalation_steps WHERE clock_key = 'resolution' AND step = 0.5"
    assert await db.fetchval(status) == "superseded"  # paused at 30 minutes: not reached
    await recorder.record([ev("ticket.status_changed", 2, after(30.5),
                                  status="in_progress")], after(63))  # fmt: skip
    # Half a minute of pause: the step was reached at 60.5, before it fired at 61.
    assert await db.fetchval(status) == "fired"
    assert await fire(db, after(64)) == []  # it fired once: no second firing, no new notice
    assert await db.fetchval(
        "SELECT count(*) FROM outbox WHERE clock_key = 'resolution'") == notices  # fmt: skip


async def test_a_priority_change_fires_passed_steps_at_once_and_fired_steps_never_again(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    # P3 falls back to the contract's default: response within 4 hours.
    await recorder.record([created(priority="P3")], after(1))
    assert await fire(db, after(121)) == [("E-1", "response", 0.5)]
    await recorder.record([ev("ticket.priority_changed", 1, after(125), priority="P1")],
                          after(126))  # fmt: skip
    fired = await fire(db, after(126))
    assert [step for _, clock, step in fired if clock == "response"] == [0.75, 0.9, 1.0, 1.5, 2.0]
    target = await db.fetchval("SELECT target_s FROM clocks WHERE clock_key = 'response'")
    assert target == 15 * 60


async def test_two_schedulers_at_once_fire_each_step_once(
    db: asyncpg.Connection, recorder: Recorder, database_url: str
) -> None:
    tickets = [created(f"E-{n}", at=MONDAY + timedelta(minutes=n)) for n in range(80)]
    await recorder.record(tickets, after(1))
    other = await asyncpg.connect(database_url)
    try:
        composer = Composer(CONFIG)
        now = datetime(2026, 11, 24, 12, tzinfo=UTC)
        seen: list[tuple[str, str, float]] = []
        while True:
            firings = await asyncio.gather(
                fire_due(PostgresFiringStore(db), composer, now, 7),
                fire_due(PostgresFiringStore(other), composer, now, 7),
            )
            if not any(f.claimed for f in firings):
                break
            seen += [(s.ticket_id, s.clock_key, s.step) for f in firings for s in f.fired]
    finally:
        await other.close()
    assert len(seen) == len(set(seen))
    assert len(seen) == await db.fetchval("SELECT count(*) FROM escalation_steps")
    # Every clock's steps up to now: 6 response and 6 resolution steps per ticket.
    assert len(seen) == 80 * 12


async def test_clocks_written_before_steps_were_stored_are_measured_again_at_start(
    db: asyncpg.Connection, recorder: Recorder, database_url: str
) -> None:
    await recorder.record([created()], after(1))
    # As migration 002 leaves a clock recorded before it: no steps, a stale next_due_at.
    await db.execute("UPDATE clocks SET steps = '{}', tiers = '{}', step_due_at = '{}'")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await measure_unstepped(
            PostgresReads(pool), Recorder(ClockMeter(CONFIG), PostgresRecordingStore(pool))
        )
    finally:
        await pool.close()
    rows = await db.fetch("SELECT clock_key, steps, step_due_at FROM clocks ORDER BY 1")
    assert [r["clock_key"] for r in rows] == ["resolution", "response"]
    assert all(len(r["steps"]) == len(r["step_due_at"]) == 6 for r in rows)
    assert await fire(db, after(12)) == [("E-1", "response", 0.5), ("E-1", "response", 0.75)]


async def test_the_running_engine_counts_breaches_and_escalations_by_labels(
    engine: RunningEngine, db: asyncpg.Connection
) -> None:
    labels = {"department": "okf", "service": "opus-loen", "priority": "P1",
              "metric": "response", "agreement": "sla"}  # fmt: skip

    def value(name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    breaches, strategic = value("sla_breaches_total"), value("sla_escalations_total",
                                                             tier="strategic")  # fmt: skip
    await publish_events(lines([event("ticket.created", "M-1", 0, MONDAY, department="okf",
                                      service="opus-loen", priority="P1", subject="Løn",
                                      requester={"name": "B"})]), AMQP_URL)  # fmt: skip

    async def counted() -> bool:
        return value("sla_escalations_total", tier="strategic") == strategic + 2

    await poll(counted, what="the response clock's two strategic steps counted")
    assert value("sla_breaches_total") == breaches + 1
    samples = [s for m in REGISTRY.collect() if m.name.startswith("sla_")
               for s in m.samples]  # fmt: skip
    assert all("ticket_id" not in s.labels for s in samples)


async def test_a_pause_that_occurred_before_a_step_but_arrived_after_it_cancels_the_step(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created()], after(1))
    # Pending on the customer from minute 50: resolution's 0.5 step (minute 60) not reached.
    pause = ev("ticket.status_changed", 1, after(50), status="pending_customer")
    await recorder.record([pause], after(70))
    fired = await fire(db, after(70))
    assert [s for s in fired if s[1] == "resolution"] == []
    clock = await db.fetchrow(
        "SELECT state, next_due_at FROM clocks WHERE clock_key = 'resolution'"
    )
    assert clock is not None
    assert (clock["state"], clock["next_due_at"]) == ("paused", None)


async def test_a_clock_whose_steps_cannot_be_read_is_set_aside_and_the_rest_fire(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created("E-1"), created("E-2")], after(1))
    await db.execute("UPDATE clocks SET step_due_at = step_due_at[1:2]"
                     " WHERE ticket_id = 'E-1' AND clock_key = 'response'")  # fmt: skip
    fired = await fire(db, after(12))
    assert fired == [("E-2", "response", 0.5), ("E-2", "response", 0.75)]
    later = await db.fetchval("SELECT next_due_at FROM clocks"
                              " WHERE ticket_id = 'E-1' AND clock_key = 'response'")  # fmt: skip
    assert later == after(13)  # looked at again in a minute, not every cycle


async def test_migration_005_gives_tickets_assigned_before_it_their_latest_team(
    db: asyncpg.Connection,
) -> None:
    # A database as version 4 left it: the assigned function kept, the team not.
    await migrated_up_to(db, 4)
    histories = {
        # Handed from a customer team to a function: the latest (in event time) has none.
        "OLD-1": [created("OLD-1"), ev("ticket.assigned", 2, after(9), "OLD-1",
                                       function="helpdesk"),
                  ev("ticket.assigned", 1, after(5), "OLD-1", function="pc-software",
                     team="team-okf")],
        "OLD-2": [created("OLD-2"), ev("ticket.assigned", 1, after(5), "OLD-2",
                                       function="server-network", team="drift-nat"),
                  ev("ticket.assigned", 2, after(9), "OLD-2", function="helpdesk",
                     team="team-okf")],
        "OLD-3": [created("OLD-3")],
    }  # fmt: skip
    for ticket_id, events in histories.items():
        await db.execute(
            "INSERT INTO tickets (ticket_id, created_at, event_count) VALUES ($1, $2, $3)",
            ticket_id, MONDAY, len(events),
        )  # fmt: skip
        await db.executemany(
            "INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)"
            " VALUES ($1, $2, $3, $4, $5::jsonb)",
            [(e.event_id, ticket_id, e.type, e.occurred_at, e.model_dump_json()) for e in events],
        )

    applied = await migrate(db)

    assert [m.version for m in applied] == [m.version for m in migrations()[4:]]
    assert applied[0].name == "assigned_team"
    teams_of = "SELECT ticket_id, assigned_team FROM tickets"
    teams = {r["ticket_id"]: r["assigned_team"] for r in await db.fetch(teams_of)}
    assert teams == {"OLD-1": None, "OLD-2": "team-okf", "OLD-3": None}
    # Measured again from their events, the tickets keep what the backfill gave them.
    recorder = Recorder(ClockMeter(CONFIG), PostgresRecordingStore(db))
    assert await recorder.remeasure(list(histories), after(10)) == 3
    assert {r["ticket_id"]: r["assigned_team"] for r in await db.fetch(teams_of)} == teams
