"""The SLA feed's port, the same on PostgreSQL and in memory: versions written with the
change that made them, claimed once, settled unless a newer one came."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.intake.recorder import Recorder
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.sla_clock.meter import ClockMeter
from tests.contract.conftest import Backend, MemoryBackend, PostgresBackend
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

CONFIG = load_config(EXAMPLE_CONFIG)
METER = ClockMeter(CONFIG)
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)
NOW = MONDAY.astimezone(UTC)
LEASE = timedelta(seconds=30)


def ev(type_: str, ticket: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    at = MONDAY + timedelta(minutes=minutes)
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def created(ticket: str, department: str = "okf") -> TicketEvent:
    service = "opus-loen" if department == "okf" else "omsorgssystem"
    return ev("ticket.created", ticket, 0, 0, department=department, service=service,
              priority="P1", subject="Løn")  # fmt: skip


async def record(backend: Backend, *events: TicketEvent, minutes: float = 1) -> None:
    await Recorder(METER, backend.recording).record(list(events), NOW + timedelta(minutes=minutes))


async def test_a_measured_ticket_has_a_version_to_publish(backend: Backend) -> None:
    await record(backend, created("A"), ev("ticket.responded", "A", 1, 0.5))
    # Waiting for its creation: nothing measured, nothing to publish.
    await record(backend, ev("ticket.responded", "B", 1, 0.5))
    [ticket] = await backend.feed.claim(NOW, 10, LEASE)
    assert (ticket.ticket_id, ticket.version, ticket.department) == ("A", 1, "okf")
    assert ticket.priority == "P1"
    assert ticket.status == "new"
    keys = {clock.key: clock for clock in ticket.clocks}
    assert {"response", "resolution"} <= set(keys)
    assert keys["response"].state == "met"
    assert keys["response"].stopped_at is not None
    resolution = keys["resolution"]
    assert resolution.running
    assert resolution.deadline is not None
    assert resolution.next_due_at == resolution.step_due_at[0]


async def test_a_claim_is_taken_once_until_it_lapses(backend: Backend) -> None:
    await record(backend, created("A"), created("B", "sof"))
    first = await backend.feed.claim(NOW, 1, LEASE)
    second = await backend.feed.claim(NOW, 10, LEASE)
    assert [t.ticket_id for t in first + second] == ["A", "B"]  # the oldest change first
    assert await backend.feed.claim(NOW, 10, LEASE) == []
    lapsed = await backend.feed.claim(NOW + LEASE, 10, LEASE)  # the claimers died
    assert sorted(t.ticket_id for t in lapsed) == ["A", "B"]


async def test_settling_keeps_a_newer_version(backend: Backend) -> None:
    await record(backend, created("A"), created("B", "sof"))
    claimed = await backend.feed.claim(NOW, 10, LEASE)
    assert [(t.ticket_id, t.version) for t in claimed] == [("A", 1), ("B", 1)]
    # A changes while its version 1 is being published: version 2 waits, unclaimed.
    await record(backend, ev("ticket.responded", "A", 1, 0.5), minutes=2)
    await backend.feed.settle([(t.ticket_id, t.version) for t in claimed])
    [again] = await backend.feed.claim(NOW, 10, LEASE)
    assert (again.ticket_id, again.version) == ("A", 2)
    await backend.feed.settle([("A", 2)])
    assert await backend.feed.claim(NOW + 2 * LEASE, 10, LEASE) == []


async def test_steps_fired_make_a_new_version(backend: Backend) -> None:
    await record(backend, created("A"))
    claimed = await backend.feed.claim(NOW, 10, LEASE)
    await backend.feed.settle([(t.ticket_id, t.version) for t in claimed])
    # An hour on, P1's response (30 minutes) has breached: its steps fire.
    firing = await fire_due(backend.firing, Composer(CONFIG), NOW + timedelta(hours=1), 100)
    assert firing.fired
    [ticket] = await backend.feed.claim(NOW, 10, LEASE)
    assert ticket.version == 2
    response = next(clock for clock in ticket.clocks if clock.key == "response")
    assert response.state == "breached"


async def test_the_locked_row_shows_the_version_the_last_write_left(backend: Backend) -> None:
    """The recorder trusts the clock rows it wrote while the version stands as its commit
    left it: every commit that writes clocks raises it by one, and nothing else does."""

    async def versions() -> dict[str, int]:
        async with backend.recording.transaction() as store:
            return {t.ticket_id: t.feed_version for t in await store.lock_tickets(["A", "B"])}

    await record(backend, created("A"), ev("ticket.responded", "B", 1, 0.5))
    assert await versions() == {"A": 1, "B": 0}  # B waits for its creation: not measured
    await record(backend, ev("ticket.responded", "A", 1, 0.5), minutes=2)
    assert await versions() == {"A": 2, "B": 0}
    firing = await fire_due(backend.firing, Composer(CONFIG), NOW + timedelta(hours=8), 100)
    assert firing.fired
    assert await versions() == {"A": 3, "B": 0}


async def test_a_claim_whose_ticket_moved_on_publishes_nothing_of_it(backend: Backend) -> None:
    """The version read with the clocks is the one claimed, or the ticket is left to the
    claimer of its newer version: two publishers never send one version."""
    await record(backend, created("A"), created("B", "sof"))
    # A commits a newer version between the claim of its row and the read of its clocks
    # (in PostgreSQL two statements): the version on the ticket has moved past the row.
    if isinstance(backend, MemoryBackend):
        backend.tables.tickets["A"].feed_version += 1
    else:
        assert isinstance(backend, PostgresBackend)
        await backend.pool.execute("UPDATE tickets SET feed_version = 2 WHERE ticket_id = 'A'")
    claimed = await backend.feed.claim(NOW, 10, LEASE)
    assert [(t.ticket_id, t.version) for t in claimed] == [("B", 1)]


@pytest.mark.integration
async def test_settling_passes_a_row_being_given_a_newer_version(
    postgres_backend: PostgresBackend,
) -> None:
    """A settle does not wait for a row another transaction holds (two engines' settle
    and recording deadlocked that way, and the rolled-back settle republished its batch):
    it leaves the row, which that transaction gives a newer version, and settles the rest."""
    backend = postgres_backend
    await record(backend, created("A"), created("B", "sof"))
    claimed = await backend.feed.claim(NOW, 10, LEASE)
    async with backend.pool.acquire() as writer, writer.transaction():
        await writer.execute("UPDATE tickets SET feed_version = 2 WHERE ticket_id = 'A'")
        await writer.execute(
            "UPDATE sla_feed SET version = 2, claimed_until = NULL WHERE ticket_id = 'A'"
        )
        await asyncio.wait_for(
            backend.feed.settle([(t.ticket_id, t.version) for t in claimed]), timeout=10
        )
    [again] = await backend.feed.claim(NOW, 10, LEASE)
    assert (again.ticket_id, again.version) == ("A", 2)  # B settled, A's newer version waits
