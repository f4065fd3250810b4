"""The outbox sender on the in-memory store: sent, retried with backoff, failed for good."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from engine.notify.notice import ChannelName, DeliveryError, Notice
from engine.notify.sender import OutboxSender, SenderOptions
from engine.store.errors import is_transient
from engine.store.firing import QueuedNotice
from engine.store.memory.firing import MemoryFiringStore
from engine.store.memory.outbox import MemoryOutboxStore
from engine.store.memory.tables import NoticeRow, Tables
from tests.services import poll

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Webhook:
    """A channel that answers each delivery with the next of its scripted outcomes."""

    name: ChannelName = "webhook"

    def __init__(self, *outcomes: DeliveryError | None) -> None:
        self.outcomes = list(outcomes)
        self.delivered: list[Notice] = []

    async def deliver(self, notice: Notice) -> None:
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self.delivered.append(notice)

    async def close(self) -> None:
        """Nothing to release."""


@pytest.fixture
def tables() -> Tables:
    return Tables()


async def enqueue(tables: Tables, n: int, channel: ChannelName = "webhook") -> NoticeRow:
    notice = Notice(UUID(int=n), channel, f"https://hooks.example/{n}", "Åse", "Sag", "Tekst",
                    {"n": n})  # fmt: skip
    async with MemoryFiringStore(tables).transaction() as firing:
        await firing.enqueue_notices([QueuedNotice("T-1", "response", 0.5, notice)], T0)
    return tables.outbox[notice.notice_id]


@asynccontextmanager
async def sending(sender: OutboxSender) -> AsyncIterator[None]:
    """The sender running for the block, stopped (and its end awaited) after it."""
    stopping = asyncio.Event()
    task = asyncio.create_task(sender.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, 10)


def sender_on(tables: Tables, channel: Webhook, clock: Clock, **tuning: float) -> OutboxSender:
    options = SenderOptions(idle_s=5, **tuning)  # type: ignore[arg-type]
    return OutboxSender(
        MemoryOutboxStore(tables), {"webhook": channel}, options, transient=is_transient, now=clock
    )


async def test_a_notice_is_sent_once_and_marked_sent(tables: Tables) -> None:
    clock, webhook = Clock(), Webhook()
    row = await enqueue(tables, 1)
    sender = sender_on(tables, webhook, clock)
    async with sending(sender):
        await poll(lambda: _true(row.status == "sent"), timeout_s=10, what="the notice sent")
    assert [n.notice_id for n in webhook.delivered] == [UUID(int=1)]
    assert webhook.delivered[0].payload == {"n": 1}
    assert (row.attempts, row.sent_at, row.last_error) == (1, T0, None)
    assert (sender.sent, sender.failed) == (1, 0)


async def test_a_transient_failure_is_retried_with_backoff_then_sent(tables: Tables) -> None:
    clock = Clock()
    webhook = Webhook(DeliveryError("503", permanent=False), DeliveryError("503", permanent=False))
    row = await enqueue(tables, 1)
    sender = sender_on(tables, webhook, clock, backoff_base_s=2.0)
    async with sending(sender):
        await poll(lambda: _true(row.last_error == "503"), timeout_s=10, what="a first failure")
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, T0 + S(2))
        clock.now = T0 + S(2)
        sender.wake()
        # Claimed, the notice is leased for 60 s; settled, it waits for its retry.
        await poll(lambda: _true(row.attempts == 2 and row.next_attempt_at != clock.now + S(60)),
                   timeout_s=10, what="a second failure")  # fmt: skip
        assert row.next_attempt_at == clock.now + S(4)  # the backoff doubled
        clock.now += S(4)
        sender.wake()
        await poll(lambda: _true(row.status == "sent"), timeout_s=10, what="the notice sent")
    assert (row.attempts, len(webhook.delivered), sender.sent) == (3, 1, 1)


async def test_a_permanent_failure_fails_the_notice_for_good(tables: Tables) -> None:
    clock = Clock()
    webhook = Webhook(DeliveryError("410 Gone", permanent=True))
    row = await enqueue(tables, 1)
    unconfigured = await enqueue(tables, 2, channel="email")  # no e-mail channel here
    sender = sender_on(tables, webhook, clock)
    async with sending(sender):
        await poll(lambda: _true(row.status == unconfigured.status == "failed"), timeout_s=10,
                   what="both notices failed")  # fmt: skip
    assert (row.attempts, row.failed_at, row.last_error) == (1, T0, "410 Gone")
    assert unconfigured.last_error == "no email channel is configured"
    assert (webhook.delivered, sender.failed) == ([], 2)


async def test_the_last_attempt_fails_the_notice(tables: Tables) -> None:
    clock = Clock()
    webhook = Webhook(*[DeliveryError("503", permanent=False)] * 2)
    row = await enqueue(tables, 1)
    sender = sender_on(tables, webhook, clock, max_attempts=2)
    async with sending(sender):
        await poll(lambda: _true(row.attempts == 1 and row.last_error == "503"), timeout_s=10,
                   what="a first failure")  # fmt: skip
        clock.now = row.next_attempt_at
        sender.wake()
        await poll(lambda: _true(row.status == "failed"), timeout_s=10, what="the notice failed")
    assert (row.attempts, row.last_error, webhook.delivered) == (2, "503", [])


def S(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


async def _true(value: bool) -> bool:
    return value
