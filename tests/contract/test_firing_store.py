"""The firing port's contract, the same on PostgreSQL and in memory."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import asyncpg
import pytest

from engine.escalation import FiredStep
from engine.store.firing import ClockAdvance, DueListener
from tests.contract.conftest import T0, Backend, PostgresBackend, queued
from tests.services import poll


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def fired(ticket_id: str, step: float, due_at: datetime) -> FiredStep:
    return FiredStep(
        ticket_id=ticket_id, clock_key="response", metric="response", agreement_kind="sla",
        department="okf", service="opus-loen", function="helpdesk", priority="P1",
        calendar="office", target_s=900.0, step=step, tier="operational", due_at=due_at,
        fired_at=due_at, deadline=None,
    )  # fmt: skip


async def test_claim_takes_due_clocks_earliest_first_up_to_the_limit(backend: Backend) -> None:
    await backend.add_clock("A", "response", (at(10), at(20)))
    await backend.add_clock("B", "response", (at(5), at(15)))
    await backend.add_clock("C", "response", (at(30), at(40)))
    await backend.add_clock("D", "response", (None, None))  # paused: never due
    async with backend.firing.transaction() as firing:
        assert await firing.claim_due(at(25), 10) == ["B", "A"]
    async with backend.firing.transaction() as firing:
        assert await firing.claim_due(at(25), 1) == ["B"]
    async with backend.firing.transaction() as firing:
        assert await firing.claim_due(at(4), 10) == []


async def test_due_clocks_read_the_claimed_tickets_due_clocks_as_stored(backend: Backend) -> None:
    await backend.add_clock("A", "response", (at(10), at(20)))
    await backend.add_clock("A", "resolution", (at(60), at(120)))
    await backend.add_clock("B", "response", (at(5), at(15)))
    async with backend.firing.transaction() as firing:
        clocks = await firing.due_clocks(["A"], at(25))
    assert [(c.ticket_id, c.clock_key) for c in clocks] == [("A", "response")]
    clock = clocks[0]
    assert (clock.steps, clock.tiers, clock.step_due_at) == (
        (0.5, 1.0), ("operational", "tactical"), (at(10), at(20))
    )  # fmt: skip
    assert (clock.metric, clock.priority, clock.target_s, clock.deadline, clock.measured_at) == (
        "response", "P1", 900.0, at(20), T0
    )  # fmt: skip


async def test_a_step_records_once(backend: Backend) -> None:
    await backend.add_clock("A", "response", (at(10), at(20)))
    step = fired("A", 0.5, at(10))
    async with backend.firing.transaction() as firing:
        assert await firing.record_steps([step]) == [step]
    async with backend.firing.transaction() as firing:
        assert await firing.record_steps([step, fired("A", 1.0, at(20))]) == [
            fired("A", 1.0, at(20))
        ]
        assert await firing.fired_steps(["A", "B"]) == {("A", "response"): {0.5, 1.0}}
        assert await firing.record_steps([]) == []


async def test_a_failed_transaction_leaves_nothing_behind(backend: Backend) -> None:
    await backend.add_clock("A", "response", (at(10), at(20)))

    async def doomed() -> None:
        async with backend.firing.transaction() as firing:
            await firing.record_steps([fired("A", 0.5, at(10))])
            await firing.enqueue_notices([queued("A", 1)], at(10))
            await firing.advance([ClockAdvance("A", "response", at(20), False)])
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await doomed()
    async with backend.firing.transaction() as firing:
        assert await firing.fired_steps(["A"]) == {}
    assert await backend.clock("A", "response") == ("running", at(10))
    assert await backend.outbox.earliest_pending() is None


async def test_a_notice_enqueues_once_per_id(backend: Backend) -> None:
    async with backend.firing.transaction() as firing:
        await firing.enqueue_notices([queued("A", 1), queued("A", 2)], at(10))
    async with backend.firing.transaction() as firing:
        await firing.enqueue_notices([queued("A", 1)], at(11))  # again: kept as it was
        await firing.enqueue_notices([], at(11))
    claimed = await backend.outbox.claim(at(12), at(13), 10)
    assert sorted(c.notice.notice_id.int for c in claimed) == [1, 2]
    row = await backend.notice(queued("A", 1).notice.notice_id)
    assert (row["created_at"], row["step"], row["clock_key"]) == (at(10), 0.5, "response")
    assert claimed[0].notice.payload == {"ticket_id": "A", "n": claimed[0].notice.notice_id.int}


async def test_advance_moves_the_next_due_instant_and_marks_running_clocks_breached(
    backend: Backend,
) -> None:
    await backend.add_clock("A", "response", (at(10), at(20)))
    await backend.add_clock("B", "response", (at(10), at(20)))
    async with backend.firing.transaction() as firing:
        await firing.advance([
            ClockAdvance("A", "response", at(20), False),
            ClockAdvance("B", "response", None, True),
        ])  # fmt: skip
        await firing.advance([])
    assert await backend.clock("A", "response") == ("running", at(20))
    assert await backend.clock("B", "response") == ("breached", None)
    assert await backend.firing.earliest_due() == at(20)


async def test_earliest_due_is_the_earliest_next_due_instant(backend: Backend) -> None:
    assert await backend.firing.earliest_due() is None
    await backend.add_clock("A", "response", (None, None))
    assert await backend.firing.earliest_due() is None
    await backend.add_clock("B", "response", (at(30), at(40)))
    await backend.add_clock("C", "response", (at(7), at(40)))
    assert await backend.firing.earliest_due() == at(7)


async def test_a_listener_hears_of_an_earlier_due_instant_until_closed(
    backend: Backend,
) -> None:
    heard: list[datetime | None] = []
    lost: list[DueListener] = []
    listener = await backend.firing.listen(heard.append, lost.append)
    assert listener is not None
    assert not listener.is_closed()
    await backend.announce_due(at(3))

    async def arrived() -> bool:
        return heard == [at(3)]

    await poll(arrived, timeout_s=10, what="word of the due instant")
    await listener.close()
    assert listener.is_closed()
    await backend.announce_due(at(4))
    assert heard == [at(3)]


@pytest.mark.integration
async def test_claim_skips_a_ticket_someone_else_holds(postgres_backend: PostgresBackend) -> None:
    # In memory one firing runs at a time: there is no lock to skip, so PostgreSQL alone.
    backend = postgres_backend
    await backend.add_clock("A", "response", (at(10), at(20)))
    await backend.add_clock("B", "response", (at(12), at(20)))
    holder = await asyncpg.connect(backend.database_url)
    try:
        async with holder.transaction():  # as intake holds a ticket it re-measures
            await holder.execute("SELECT 1 FROM tickets WHERE ticket_id = 'A' FOR UPDATE")
            async with backend.firing.transaction() as firing:
                assert await asyncio.wait_for(firing.claim_due(at(25), 10), 5) == ["B"]
    finally:
        await holder.close()
    async with backend.firing.transaction() as firing:
        assert await firing.claim_due(at(25), 10) == ["A", "B"]
