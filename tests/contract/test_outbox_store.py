"""The outbox port's contract, the same on PostgreSQL and in memory."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from engine.store.outbox import Settlement
from tests.contract.conftest import T0, Backend, queued


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


async def enqueue(backend: Backend, *numbers: int, now: datetime = T0) -> None:
    async with backend.firing.transaction() as firing:
        await firing.enqueue_notices([queued("A", n) for n in numbers], now)


async def test_claim_waits_for_next_attempt_at_and_leases(backend: Backend) -> None:
    await enqueue(backend, 1)
    assert await backend.outbox.claim(at(-1), at(1), 10) == []
    first = await backend.outbox.claim(at(0), at(1), 10)
    assert [(c.notice.notice_id.int, c.ticket_id, c.attempts) for c in first] == [(1, "A", 1)]
    assert first[0].notice.channel == "webhook"
    assert first[0].notice.recipient == "https://hooks.example/1"
    assert await backend.outbox.claim(at(0.5), at(1.5), 10) == []  # leased to the first
    again = await backend.outbox.claim(at(1), at(2), 10)  # the lease ran out
    assert [c.attempts for c in again] == [2]


async def test_claim_takes_the_earliest_up_to_the_limit(backend: Backend) -> None:
    await enqueue(backend, 1, now=at(2))
    await enqueue(backend, 2, now=at(1))
    await enqueue(backend, 3, now=at(3))
    claimed = await backend.outbox.claim(at(5), at(10), 2)
    assert sorted(c.notice.notice_id.int for c in claimed) == [1, 2]  # in no set order


async def test_two_claims_at_once_never_take_the_same_notice(backend: Backend) -> None:
    await enqueue(backend, *range(1, 21))
    claims = await asyncio.gather(*(backend.outbox.claim(at(0), at(5), 7) for _ in range(3)))
    ids = [c.notice.notice_id for claim in claims for c in claim]
    assert len(ids) == len(set(ids)) == 20


async def test_settle_sets_status_and_retry_time(backend: Backend) -> None:
    await enqueue(backend, 1, 2, 3)
    claimed = {c.notice.notice_id.int: c for c in await backend.outbox.claim(at(0), at(1), 10)}
    sent, retry, failed = claimed[1], claimed[2], claimed[3]
    await backend.outbox.settle([
        Settlement(sent.notice.notice_id, "sent", at(0.1), at(0.1), None, None, 1),
        Settlement(retry.notice.notice_id, "pending", at(4), None, None, "503", 1),
        Settlement(failed.notice.notice_id, "failed", at(0.2), None, at(0.2), "410", 1),
    ])  # fmt: skip
    rows = {n: await backend.notice(c.notice.notice_id) for n, c in claimed.items()}
    assert (rows[1]["status"], rows[1]["sent_at"], rows[1]["last_error"]) == ("sent", at(0.1), None)
    assert (rows[2]["status"], rows[2]["next_attempt_at"], rows[2]["last_error"]) == (
        "pending", at(4), "503"
    )  # fmt: skip
    assert (rows[3]["status"], rows[3]["failed_at"], rows[3]["last_error"]) == (
        "failed", at(0.2), "410"
    )  # fmt: skip
    assert await backend.outbox.earliest_pending() == at(4)
    assert [c.notice.notice_id.int for c in await backend.outbox.claim(at(9), at(10), 10)] == [2]


async def test_a_settlement_of_an_expired_claim_does_not_stand(backend: Backend) -> None:
    await enqueue(backend, 1)
    [first] = await backend.outbox.claim(at(0), at(1), 10)
    [second] = await backend.outbox.claim(at(1), at(2), 10)  # another sender, after the lease
    await backend.outbox.settle(
        [Settlement(first.notice.notice_id, "failed", at(1.5), None, at(1.5), "late", 1)]
    )
    row = await backend.notice(first.notice.notice_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 2, None)
    await backend.outbox.settle(
        [Settlement(second.notice.notice_id, "sent", at(1.6), at(1.6), None, None, 2)]
    )
    assert (await backend.notice(first.notice.notice_id))["status"] == "sent"
    await backend.outbox.settle(  # settled already: a late word changes nothing
        [Settlement(second.notice.notice_id, "failed", at(1.7), None, at(1.7), "x", 2)]
    )
    assert (await backend.notice(first.notice.notice_id))["status"] == "sent"


async def test_earliest_pending_leaves_out_settled_notices(backend: Backend) -> None:
    assert await backend.outbox.earliest_pending() is None
    await enqueue(backend, 1, now=at(3))
    await enqueue(backend, 2, now=at(2))
    assert await backend.outbox.earliest_pending() == at(2)
    [claimed] = await backend.outbox.claim(at(2), at(8), 1)
    assert await backend.outbox.earliest_pending() == at(3)  # the leased one waits till 8
    await backend.outbox.settle(
        [Settlement(claimed.notice.notice_id, "sent", at(2), at(2), None, None, 1)]
    )
    await backend.outbox.settle([])
    assert await backend.outbox.earliest_pending() == at(3)
