"""Under the budgets, against the real PostgreSQL: a catch-up (events arriving long after
they occurred) goes into one digest per recipient, and a step superseded before its
notice left sends nothing."""

from __future__ import annotations

import json

import asyncpg
import pytest

from engine.config import load_config
from engine.intake.recorder import Recorder
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.outbox import PostgresOutboxStore
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG
from tests.integration.test_escalation import after, created, ev

pytestmark = pytest.mark.integration
CONFIG = load_config(EXAMPLE_CONFIG)  # the default budgets
COMPOSER = Composer(CONFIG)


@pytest.fixture
async def recorder(db: asyncpg.Connection) -> Recorder:
    await migrate(db)
    return Recorder(ClockMeter(CONFIG), PostgresRecordingStore(db))


async def test_steps_of_a_clock_already_stopped_go_into_one_digest_per_recipient(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    # Two tickets created, responded late (minute 20: past the 15-minute target) and
    # resolved, all of it arriving a day later, after an outage.
    day = 24 * 60
    for ticket in ("E-1", "E-2"):
        events = [
            created(ticket),
            ev("ticket.responded", 1, after(20), ticket),
            ev("ticket.status_changed", 2, after(30), ticket, status="resolved"),
        ]
        await recorder.record(events, after(day))
    firing = await fire_due(PostgresFiringStore(db), COMPOSER, after(day + 1), 500)
    steps = sorted((s.ticket_id, s.step) for s in firing.fired)
    assert steps == [(t, s) for t in ("E-1", "E-2") for s in (0.5, 0.75, 0.9, 1.0)]
    recorded = await db.fetchval("SELECT count(*) FROM escalation_steps WHERE status = 'fired'")
    assert recorded == 8  # recorded and counted as today
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0
    rows = await db.fetch("SELECT channel, recipient, items FROM digests")
    keys = [(r["channel"], r["recipient"]) for r in rows]
    assert len(keys) == len(set(keys))  # one per recipient and channel
    expected = sorted(
        (n.channel, n.recipient, s.ticket_id, s.step)
        for s in firing.fired
        for n in COMPOSER.notices(s)
    )
    told = sorted(
        (r["channel"], r["recipient"], item["ticket_id"], item["step"])
        for r in rows
        for item in json.loads(r["items"])
    )
    assert told == expected  # every step in exactly one message per recipient
    assert all(item["catch_up"] for r in rows for item in json.loads(r["items"]))


async def test_a_step_superseded_before_its_notices_left_sends_nothing(
    db: asyncpg.Connection, recorder: Recorder
) -> None:
    await recorder.record([created("E-1"), created("E-2")], after(1))
    await fire_due(PostgresFiringStore(db), COMPOSER, after(8), 500)  # the 0.5 steps
    # E-2's e-mail went over the budget: held. Then both were responded at minute 5,
    # which arrives after the steps fired and supersedes them.
    assert await db.fetchval("SELECT count(*) FROM digests") >= 1
    await recorder.record(
        [ev("ticket.responded", 1, after(5), "E-1"), ev("ticket.responded", 1, after(5), "E-2")],
        after(9),
    )
    outbox = PostgresOutboxStore(db)
    notices = await outbox.claim(after(9), after(10), 100)
    assert notices
    assert all(n.superseded for n in notices)
    digests = await outbox.claim_digests(after(60), after(61), 100)  # the windows ended
    assert digests
    assert all(d.digest.items == () for d in digests)
    assert all(d.superseded >= 1 for d in digests)
