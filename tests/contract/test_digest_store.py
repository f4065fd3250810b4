"""Budgets and digests in the store, the same on PostgreSQL and in memory."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine.notify.budget import Window, digest_id
from engine.notify.digest import DigestItem, compose
from engine.store.outbox import BudgetKey, HeldNotice, Settlement
from tests.contract.conftest import T0, Backend, queued
from tests.contract.test_firing_store import fired

KEY: BudgetKey = ("email", "vagt@okf.example.dk")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def held(ticket_id: str, step: float, window_start: datetime = T0) -> HeldNotice:
    item = DigestItem.of(
        fired(ticket_id, step, T0), zone="Europe/Copenhagen", catch_up=False,
        notice_id=digest_id("email", ticket_id, T0),
    )  # fmt: skip
    return HeldNotice("email", KEY[1], "Vagt ØKF", "da", window_start,
                      window_start + timedelta(minutes=15), item)  # fmt: skip


async def hold(backend: Backend, *notices: HeldNotice, window: Window | None = None) -> None:
    async with backend.firing.transaction() as firing:
        await firing.budget_windows([KEY])
        await firing.hold_notices(notices, {KEY: window} if window else {}, T0)


async def record(backend: Backend, *tickets: str, step: float = 0.5) -> None:
    async with backend.firing.transaction() as firing:
        await firing.record_steps([fired(t, step, T0) for t in tickets])


async def test_a_budget_is_quiet_until_saved_then_reads_back(backend: Backend) -> None:
    async with backend.firing.transaction() as firing:
        assert await firing.budget_windows([KEY]) == {}
        await firing.hold_notices([], {KEY: Window(T0, 1, True)}, T0)
    async with backend.firing.transaction() as firing:
        assert await firing.budget_windows([KEY, KEY]) == {KEY: Window(T0, 1, True)}


async def test_held_notices_of_one_window_make_one_digest_sent_at_its_end(
    backend: Backend,
) -> None:
    await record(backend, "A", "B", "C")
    await hold(backend, held("A", 0.5), held("B", 0.5))
    await hold(backend, held("C", 0.5))  # a later firing appends to the same row
    assert await backend.outbox.claim_digests(at(14), at(20), 10) == []
    assert await backend.outbox.earliest_pending() == at(15)
    [claimed] = await backend.outbox.claim_digests(at(15), at(16), 10)
    assert claimed.digest.digest_id == digest_id("email", KEY[1], T0)
    assert [i.ticket_id for i in claimed.digest.items] == ["A", "B", "C"]
    assert (claimed.attempts, claimed.superseded, claimed.digest.language) == (1, 0, "da")
    assert await backend.outbox.claim_digests(at(15.5), at(17), 10) == []  # leased
    again = await backend.outbox.claim_digests(at(16), at(17), 10)  # the lease ran out
    assert [(c.digest.digest_id, c.attempts) for c in again] == [(claimed.digest.digest_id, 2)]
    await backend.outbox.settle_digests(
        [Settlement(claimed.digest.digest_id, "sent", at(16), at(16), None, None, 1)]
    )  # an earlier attempt's outcome does not stand
    await backend.outbox.settle_digests(
        [Settlement(claimed.digest.digest_id, "sent", at(16), at(16), None, None, 2)]
    )
    assert await backend.outbox.claim_digests(at(60), at(61), 10) == []
    assert await backend.outbox.earliest_pending() is None


async def test_a_notice_held_after_its_digest_was_taken_goes_into_the_next_part(
    backend: Backend,
) -> None:
    await record(backend, "A", "B")
    await hold(backend, held("A", 0.5))
    [first] = await backend.outbox.claim_digests(at(15), at(16), 10)
    await hold(backend, held("B", 0.5))  # fired just before the window ended
    [second] = await backend.outbox.claim_digests(at(15), at(16), 10)
    assert [i.ticket_id for i in first.digest.items] == ["A"]  # unchanged once taken
    assert second.digest.digest_id == digest_id("email", KEY[1], T0, 1)
    assert [i.ticket_id for i in second.digest.items] == ["B"]


async def test_items_of_superseded_steps_are_left_out_and_counted(backend: Backend) -> None:
    await record(backend, "A", "B")
    await hold(backend, held("A", 0.5), held("B", 0.5))
    async with backend.recording.transaction() as recording:
        await recording.supersede_steps([("A", "response", 0.5)], at(1))
    [claimed] = await backend.outbox.claim_digests(at(15), at(16), 10)
    assert [i.ticket_id for i in claimed.digest.items] == ["B"]
    assert claimed.superseded == 1


async def test_a_notice_of_a_superseded_step_is_claimed_marked(backend: Backend) -> None:
    await record(backend, "A")
    async with backend.firing.transaction() as firing:
        notice = queued("A", 1)
        await firing.enqueue_notices([notice], T0)
    async with backend.recording.transaction() as recording:
        await recording.supersede_steps([("A", "response", notice.step)], at(1))
    [claimed] = await backend.outbox.claim(at(0), at(1), 10)
    assert claimed.superseded
    await backend.outbox.settle(
        [Settlement(claimed.notice.notice_id, "superseded", at(0), None, None, None, 1)]
    )
    assert (await backend.notice(claimed.notice.notice_id))["status"] == "superseded"


async def test_a_digest_lists_up_to_its_limit_and_counts_the_rest(backend: Backend) -> None:
    await record(backend, "A", "B", "C", "D")
    for batch in (("A", "B", "C"), ("D",)):  # the first batch alone passes the limit
        async with backend.firing.transaction() as firing:
            await firing.budget_windows([KEY])
            await firing.hold_notices([held(t, 0.5) for t in batch], {}, T0, max_items=2)
    [claimed] = await backend.outbox.claim_digests(at(15), at(16), 10)
    assert [i.ticket_id for i in claimed.digest.items] == ["A", "B"]
    assert claimed.digest.unlisted == 2
    text = compose(claimed.digest)
    assert text.subject.startswith("[SLA samlet] 4 eskaleringer ")
    assert "og 2 flere, ikke vist her" in text.body
    assert text.payload["count"] == 4
