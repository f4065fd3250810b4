"""The simulator decides as the daemon does: one stream through both, step by step.

The daemon's side is its store and scheduler against the real PostgreSQL, driven in
virtual time: before each event is recorded (at the instant it occurred) every step
due by then is fired, as the scheduler fires it when its instant comes.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.simulate.core import simulate
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.recording import PostgresRecordingStore
from examples.make_year import year_events
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event, stream

pytestmark = pytest.mark.integration
CONFIG = load_config(EXAMPLE_CONFIG)
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)


def at(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def okf(ticket: str, priority: str, minutes: float = 0) -> dict[str, Any]:
    # ØKF's Opus Løn: P1 response 15 min, resolution 2 h; P4 far longer.
    return event("ticket.created", ticket, 0, at(minutes), department="okf",
                 service="opus-loen", priority=priority, subject="Løn", requester={})  # fmt: skip


def turns() -> list[dict[str, Any]]:
    """Tickets whose clocks are retargeted, reassigned, paused and reopened."""
    change = "ticket.priority_changed"
    status = "ticket.status_changed"
    return [
        # Downgraded after P1's first steps fired: those never fire again.
        okf("DOWN-1", "P1"), event(change, "DOWN-1", 1, at(10), priority="P4"),
        # Upgraded late: the steps P1 has passed fire at once, at their instants.
        okf("UP-1", "P4"), event(change, "UP-1", 1, at(120), priority="P1"),
        # Assigned, reassigned, paused, resumed, resolved, reopened, resolved.
        okf("TURN-1", "P2"),
        event("ticket.assigned", "TURN-1", 1, at(5), function="server-network"),
        event("ticket.assigned", "TURN-1", 2, at(40), function="pc-software"),
        event(status, "TURN-1", 3, at(50), status="pending_customer"),
        event(status, "TURN-1", 4, at(300), status="in_progress"),
        event(status, "TURN-1", 5, at(400), status="resolved"),
        event(status, "TURN-1", 6, at(420), status="in_progress"),
        event(status, "TURN-1", 7, at(900), status="resolved"),
        # Reclassified to a service ØKF has not ordered: default targets from the start.
        okf("RECL-1", "P2"),
        event("ticket.reclassified", "RECL-1", 1, at(30), service="print"),
        # Resolved, retargeted, reclassified to a stricter SLA (its stopped clock is then
        # past the target: steps fire), then reopened, which resumes it under P4.
        event("ticket.created", "REOPEN-1", 0, at(-60), department="buf", service="esdh",
              priority="P2", subject="Sag", requester={}),
        event(status, "REOPEN-1", 1, at(360), status="resolved"),
        event(change, "REOPEN-1", 2, at(370), priority="P4"),
        event("ticket.reclassified", "REOPEN-1", 3, at(380), department="okf",
              service="opus-loen"),
        event(status, "REOPEN-1", 4, at(390), status="in_progress"),
    ]  # fmt: skip


def history() -> list[TicketEvent]:
    events = [*turns(), *stream(40, seed=11, day=MONDAY)]
    parsed = [parse_event(json.dumps(e)) for e in events]
    return sorted(parsed, key=lambda e: e.occurred_at)


async def daemon_fires(
    db: asyncpg.Connection,
    events: list[TicketEvent],
    until: datetime,
    restart_after: int | None = None,
) -> set[tuple[Any, ...]]:
    """Every step the daemon fires; ``restart_after`` events it starts again: a new
    recorder, with a meter of a configuration loaded anew and nothing in memory."""
    await migrate(db)
    recorder = Recorder(ClockMeter(CONFIG), PostgresRecordingStore(db))
    composer = Composer(CONFIG)

    async def fire_all(now: datetime) -> None:
        while (await fire_due(PostgresFiringStore(db), composer, now, 1000)).fired:
            pass  # each round fires what the last one claimed; stop when none is left

    for index, current in enumerate(events):
        if index == restart_after:
            recorder = Recorder(ClockMeter(load_config(EXAMPLE_CONFIG)), PostgresRecordingStore(db))
        await fire_all(current.occurred_at)
        await recorder.record([current], current.occurred_at)
    await fire_all(until)
    rows = await db.fetch("SELECT ticket_id, clock_key, step, tier, due_at, status"
                          " FROM escalation_steps")  # fmt: skip
    assert {row["status"] for row in rows} <= {"fired"}  # on time, nothing is undone
    return {(r["ticket_id"], r["clock_key"], r["step"], r["tier"], r["due_at"]) for r in rows}


async def test_the_simulator_fires_the_steps_the_daemon_fires(db: asyncpg.Connection) -> None:
    events = history()
    until = events[-1].occurred_at + timedelta(days=3)
    daemon = await daemon_fires(db, events, until)
    simulated = simulate(ClockMeter(CONFIG), events, until)
    mine = {(s.ticket_id, s.clock_key, s.step, s.tier, s.due_at) for s in simulated.steps}
    assert len(daemon) > 100  # warnings, breaches and escalations of many clocks
    assert len(mine) == len(simulated.steps)  # no step twice
    assert mine == daemon
    turned = {(t, c, s) for t, c, s, _, _ in daemon if t in ("DOWN-1", "UP-1")}
    assert ("DOWN-1", "response", 0.5) in turned  # fired under P1 before the downgrade
    assert ("UP-1", "response", 2.0) in turned  # passed at once after the upgrade
    kinds = {_kind(clock_key) for _, clock_key, *_ in daemon}
    assert kinds == {"response", "resolution", "update", "ola", "ola response"}


async def test_a_synthetic_quarter_fires_the_same_steps_in_both(db: asyncpg.Connection) -> None:
    # Retargets, reclassifications, reassignments, pauses, reopens and resent events of
    # the year generator; applied on time, in occurred_at order.
    lines = list(year_events(2030, 120, seed=7))
    unique = {line["event_id"]: line for line in lines}.values()
    events = sorted((parse_event(json.dumps(e)) for e in unique), key=lambda e: e.occurred_at)
    assert any(e.type == "ticket.priority_changed" for e in events)
    until = events[-1].occurred_at + timedelta(days=7)
    daemon = await daemon_fires(db, events, until)
    as_sent = [parse_event(json.dumps(e)) for e in lines]  # resent ones, late ones
    simulated = simulate(ClockMeter(CONFIG), as_sent, until)
    mine = {(s.ticket_id, s.clock_key, s.step, s.tier, s.due_at) for s in simulated.steps}
    assert len(mine) == len(simulated.steps)
    assert mine == daemon
    assert simulated.duplicates == len(lines) - len(unique)
    assert {_kind(clock_key) for _, clock_key, *_ in daemon} >= {"update", "ola response"}


# KFF's agreement of 2027 (the example's second version): customer advice P3 response
# 4h instead of 8h, and a calendar with Saturdays 10:00-14:00.
NEW_YEAR = datetime(2027, 1, 1, tzinfo=CPH)


def kff(ticket: str, created: datetime, department: str = "kff") -> dict[str, Any]:
    """A ticket of customer advice, P3."""
    fields = {"service": "kunderaadgivning", "priority": "P3", "subject": "Råd", "requester": {}}
    return event("ticket.created", ticket, 0, created, department=department, **fields)


def across_new_year() -> list[TicketEvent]:
    """Tickets created on both sides of 1 January 2027, living across it."""
    status = "ticket.status_changed"
    events = [
        kff("OLD", datetime(2026, 12, 30, 15, tzinfo=CPH)),  # response due in 2027
        kff("REOPENED", datetime(2026, 12, 30, 9, tzinfo=CPH)),
        event("ticket.responded", "REOPENED", 1, datetime(2026, 12, 30, 10, tzinfo=CPH)),
        event(status, "REOPENED", 2, datetime(2026, 12, 31, 9, tzinfo=CPH), status="resolved"),
        event(status, "REOPENED", 3, datetime(2027, 1, 2, 9, tzinfo=CPH), status="in_progress"),
        kff("MOVED", datetime(2026, 12, 31, 11, tzinfo=CPH), department="okf"),
        event("ticket.reclassified", "MOVED", 1, datetime(2027, 1, 2, 11, tzinfo=CPH),
              department="kff"),
        kff("NEW", datetime(2027, 1, 2, 10, tzinfo=CPH)),  # a Saturday: open from 2027
        kff("MONDAY", datetime(2027, 1, 4, 8, tzinfo=CPH)),
        *stream(25, seed=3, prefix="DEC", day=datetime(2026, 12, 30, 8, tzinfo=CPH)),
        *stream(25, seed=4, prefix="JAN", day=datetime(2027, 1, 4, 8, tzinfo=CPH)),
    ]  # fmt: skip
    parsed = [parse_event(json.dumps(e)) for e in events]
    return sorted(parsed, key=lambda e: e.occurred_at)


async def test_the_simulator_and_the_daemon_agree_across_a_version_boundary(
    db: asyncpg.Connection,
) -> None:
    events = across_new_year()
    assert events[0].occurred_at < NEW_YEAR < events[-1].occurred_at
    until = events[-1].occurred_at + timedelta(days=10)
    # The daemon starts again half-way, in the new year.
    restart = next(i for i, e in enumerate(events) if e.occurred_at > NEW_YEAR)
    daemon = await daemon_fires(db, events, until, restart_after=restart)
    simulated = simulate(ClockMeter(CONFIG), events, until)
    mine = {(s.ticket_id, s.clock_key, s.step, s.tier, s.due_at) for s in simulated.steps}
    assert len(mine) == len(simulated.steps)
    assert mine == daemon
    targets = {
        (s.ticket_id, s.metric): s.target_s
        for s in simulated.steps
        if s.ticket_id in ("OLD", "REOPENED", "MOVED", "NEW", "MONDAY") and s.agreement == "sla"
    }
    hours = 3600.0
    assert targets[("OLD", "response")] == 8 * hours  # created in 2026: the old target
    assert targets[("MOVED", "response")] == 8 * hours  # reclassified in 2027 to KFF
    assert targets[("REOPENED", "resolution")] == 40 * hours
    assert targets[("NEW", "response")] == 4 * hours
    assert targets[("MONDAY", "response")] == 4 * hours
    # NEW's response is due on its Saturday under the new calendar (10:00 + 4h), and
    # the ticket keeps the version's start in its stored snapshot, as the daemon wrote it.
    new_steps = {s.step: s.due_at for s in simulated.steps if s.ticket_id == "NEW"
                 and s.metric == "response"}  # fmt: skip
    assert new_steps[1.0] == datetime(2027, 1, 2, 14, tzinfo=CPH)
    async with PostgresRecordingStore(db).transaction() as store:
        (new, old) = await store.lock_tickets(["NEW", "OLD"])
    stored = {t.ticket_id: json.loads(t.agreements) for t in (new, old)}
    assert stored["NEW"]["sla:kff:kunderaadgivning"]["valid_from"] == NEW_YEAR.isoformat()
    assert stored["NEW"]["sla:kff:kunderaadgivning"]["calendar"] == "extended-saturday"
    assert "valid_from" not in stored["OLD"]["sla:kff:kunderaadgivning"]
    assert stored["OLD"]["sla:kff:kunderaadgivning"]["calendar"] == "extended"


def _kind(clock_key: str) -> str:
    """What a clock measures, from its key: update cycles and OLA response apart."""
    if clock_key.startswith("update:"):
        return "update"
    if clock_key.startswith("ola:"):
        return "ola response" if clock_key.endswith(":response") else "ola"
    return clock_key
