"""Requesters' personal data purged from closed tickets after the retention period."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from engine.config import load_config
from engine.events import parse_event
from engine.intake.recorder import Recorder
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.personal_data import PostgresPersonalData
from engine.store.postgres.recording import PostgresRecordingStore
from engine.store.retention import REMOVED, PersonalDataPurger, purge_personal_data
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)
RETENTION = timedelta(days=90)
REQUESTER = {"name": "Jens Hansen", "email": "jens@example.dk", "phone": "+45 1234 5678"}


def life(ticket: str, closed: bool) -> list[Any]:
    """A ticket with a requester, a description and a comment; closed on Monday at 15."""
    events = [
        event("ticket.created", ticket, 0, MONDAY, department="buf", service="esdh",
              priority="P3", subject="Jens Hansen kan ikke logge ind",
              body="Mit cpr-nummer er ...", requester=REQUESTER),
        event("ticket.responded", ticket, 1, MONDAY + timedelta(minutes=5), agent="Agent A"),
        event("ticket.commented", ticket, 2, MONDAY + timedelta(minutes=9),
              visibility="public", body="Ring til mig på 12345678", author="Agent A"),
        event("ticket.status_changed", ticket, 3, MONDAY + timedelta(hours=5),
              status="resolved"),
    ]  # fmt: skip
    if closed:
        events.append(event("ticket.status_changed", ticket, 4, MONDAY + timedelta(hours=6),
                            status="closed"))  # fmt: skip
    return [parse_event(json.dumps(e)) for e in events]


async def payloads(db: asyncpg.Connection, ticket: str) -> dict[str, dict[str, Any]]:
    rows = await db.fetch(
        "SELECT type, payload::text AS payload FROM events WHERE ticket_id = $1", ticket
    )
    return {row["type"]: json.loads(row["payload"]) for row in rows}


async def clocks(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT ticket_id, clock_key, state, elapsed_s, stopped_at FROM clocks ORDER BY 1, 2"
    )


@pytest.fixture
async def recorded(db: asyncpg.Connection) -> Recorder:
    await migrate(db)
    recorder = Recorder(ClockMeter(load_config(EXAMPLE_CONFIG)), PostgresRecordingStore(db))
    now = datetime(2026, 11, 24, tzinfo=UTC)
    await recorder.record(life("OLD-1", closed=True) + life("OPEN-1", closed=False), now)
    return recorder


async def test_the_closing_instant_is_kept(db: asyncpg.Connection, recorded: Recorder) -> None:
    closed = {r["ticket_id"]: r["closed_at"] for r in await db.fetch(
        "SELECT ticket_id, closed_at FROM tickets")}  # fmt: skip
    assert closed == {"OLD-1": MONDAY + timedelta(hours=6), "OPEN-1": None}


async def test_nothing_is_purged_before_the_retention_ends(
    db: asyncpg.Connection, recorded: Recorder
) -> None:
    closing = MONDAY + timedelta(hours=6)
    store = PostgresPersonalData(db)
    purged = await purge_personal_data(store, closing + RETENTION - timedelta(seconds=1), RETENTION)
    assert (purged.tickets, purged.events) == (0, 0)
    assert (await payloads(db, "OLD-1"))["ticket.created"]["requester"] == REQUESTER


async def test_a_closed_ticket_loses_its_requesters_data_and_keeps_its_clocks(
    db: asyncpg.Connection, recorded: Recorder
) -> None:
    before = await clocks(db)
    now = MONDAY + timedelta(hours=6) + RETENTION + timedelta(seconds=1)
    purged = await purge_personal_data(PostgresPersonalData(db), now, RETENTION)
    assert (purged.tickets, purged.events) == (1, 2)  # the creation and the comment
    old = await payloads(db, "OLD-1")
    created, comment = old["ticket.created"], old["ticket.commented"]
    assert "requester" not in created
    assert "body" not in created
    assert created["subject"] == REMOVED
    assert comment["body"] == ""
    assert comment["author"] == "Agent A"
    assert old["ticket.responded"]["agent"] == "Agent A"
    assert "Jens" not in json.dumps(old)
    assert "12345678" not in json.dumps(old)
    for payload in old.values():  # still valid events: export and simulate read them
        parse_event(json.dumps(payload))
    assert (await payloads(db, "OPEN-1"))["ticket.created"]["requester"] == REQUESTER
    assert await clocks(db) == before
    again = await purge_personal_data(PostgresPersonalData(db), now, RETENTION)
    assert again.tickets == 0  # done once


async def test_a_late_event_after_the_purge_is_purged_again(
    db: asyncpg.Connection, recorded: Recorder
) -> None:
    now = MONDAY + timedelta(hours=6) + RETENTION + timedelta(seconds=1)
    await purge_personal_data(PostgresPersonalData(db), now, RETENTION)
    late = event("ticket.commented", "OLD-1", 5, MONDAY + timedelta(hours=7),
                 visibility="internal", body="Jens ringede igen")  # fmt: skip
    await recorded.record([parse_event(json.dumps(late))], now + timedelta(hours=1))
    later = await purge_personal_data(PostgresPersonalData(db), now + timedelta(hours=2), RETENTION)
    assert later.tickets == 1
    assert "Jens" not in json.dumps(await payloads(db, "OLD-1"))


async def test_a_ticket_being_recorded_is_left_for_the_next_purge(
    db: asyncpg.Connection, recorded: Recorder, database_url: str
) -> None:
    now = MONDAY + timedelta(hours=6) + RETENTION + timedelta(seconds=1)
    other = await asyncpg.connect(database_url)
    try:
        async with other.transaction():  # as the recorder holds it while recording
            await other.execute("SELECT 1 FROM tickets WHERE ticket_id = 'OLD-1' FOR UPDATE")
            # SKIP LOCKED: the purge passes the ticket by rather than wait for it.
            purging = purge_personal_data(PostgresPersonalData(db), now, RETENTION)
            skipped = await asyncio.wait_for(purging, 10)
        assert skipped.tickets == 0
    finally:
        await other.close()
    assert (await purge_personal_data(PostgresPersonalData(db), now, RETENTION)).tickets == 1


async def test_the_daemons_purger_purges_with_its_retention(
    db: asyncpg.Connection, recorded: Recorder, database_url: str
) -> None:
    # Closed in 2026: long past a retention of one day by the wall clock of any run.
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        store = PostgresPersonalData(pool)
        await PersonalDataPurger(store, retention_days=1, interval_s=3600).purge()
    finally:
        await pool.close()
    assert "requester" not in (await payloads(db, "OLD-1"))["ticket.created"]
    assert "requester" in (await payloads(db, "OPEN-1"))["ticket.created"]
