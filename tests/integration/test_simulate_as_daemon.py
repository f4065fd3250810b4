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
    db: asyncpg.Connection, events: list[TicketEvent], until: datetime
) -> set[tuple[Any, ...]]:
    await migrate(db)
    recorder = Recorder(ClockMeter(CONFIG), PostgresRecordingStore(db))
    composer = Composer(CONFIG)

    async def fire_all(now: datetime) -> None:
        while (await fire_due(PostgresFiringStore(db), composer, now, 1000)).fired:
            pass  # each round fires what the last one claimed; stop when none is left

    for current in events:
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


def _kind(clock_key: str) -> str:
    """What a clock measures, from its key: update cycles and OLA response apart."""
    if clock_key.startswith("update:"):
        return "update"
    if clock_key.startswith("ola:"):
        return "ola response" if clock_key.endswith(":response") else "ola"
    return clock_key
