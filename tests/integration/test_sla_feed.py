"""The SLA feed against the real RabbitMQ and PostgreSQL: a ticket's life as versions,
a crash between commit and publish, two publishers."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiormq
import asyncpg
import pytest
from jsonschema import Draft202012Validator

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.feed.contract import FEED_EXCHANGE
from engine.feed.publisher import FeedPublisher
from engine.intake.recorder import Recorder
from engine.notify.compose import Composer
from engine.scheduler.firing import fire_due
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.feed import PostgresFeedStore
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG, REPO
from tests.services import AMQP_URL, poll
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
CONFIG = load_config(EXAMPLE_CONFIG)
METER = ClockMeter(CONFIG)
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)
SCHEMA = Draft202012Validator(
    json.loads((REPO / "docs" / "schema" / "sla-feed.v1.json").read_text())
)


class Feed:
    """A pool on a migrated schema, a publisher's connection, and a queue bound to the feed."""

    def __init__(self, pool: asyncpg.Pool, connection: aio_pika.abc.AbstractRobustConnection,
                 queue: aio_pika.abc.AbstractQueue) -> None:  # fmt: skip
        self.pool, self.connection, self.queue = pool, connection, queue
        self.now = MONDAY.astimezone(UTC)

    def publisher(self, batch_size: int = 500) -> FeedPublisher:
        return FeedPublisher(
            PostgresFeedStore(self.pool), self.connection, batch_size=batch_size,
            now=lambda: self.now,
        )  # fmt: skip

    async def record(self, *events: TicketEvent) -> None:
        await Recorder(METER, PostgresRecordingStore(self.pool)).record(list(events), self.now)

    async def received(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        """The next ``n`` messages (routing key, body), each held to the schema."""
        got: list[tuple[str, dict[str, Any]]] = []

        async def arrived() -> bool:
            while len(got) < n:
                message = await self.queue.get(no_ack=True, fail=False)
                if message is None:
                    return False
                body = json.loads(message.body)
                assert list(SCHEMA.iter_errors(body)) == []
                assert message.message_id == f"{body['ticket_id']}:{body['version']}"
                assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
                got.append((message.routing_key or "", body))
            return True

        await poll(arrived, timeout_s=20, what=f"{n} feed messages")
        return got

    async def nothing_more(self) -> None:
        assert await self.queue.get(no_ack=True, fail=False) is None


@pytest.fixture
async def feed(database_url: str) -> AsyncIterator[Feed]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as connection:
        await migrate(connection)
    broker = await aio_pika.connect_robust(AMQP_URL)
    channel = await broker.channel()
    exchange = await channel.declare_exchange(FEED_EXCHANGE, aio_pika.ExchangeType.TOPIC,
                                              durable=True)  # fmt: skip
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "sla.#")
    yield Feed(pool, broker, queue)
    await broker.close()
    await pool.close()


def ev(type_: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    at = MONDAY + timedelta(minutes=minutes)
    return parse_event(json.dumps(event(type_, "LIFE-1", seq, at, **fields)))


async def test_a_tickets_life_is_a_sequence_of_versions(feed: Feed) -> None:
    publisher = feed.publisher()
    life = [
        (0, [ev("ticket.created", 0, 0, department="okf", service="opus-loen",
                priority="P3", subject="Løn")]),
        (5, [ev("ticket.responded", 1, 5)]),
        (10, [ev("ticket.status_changed", 2, 10, status="pending_customer")]),
        (20, [ev("ticket.status_changed", 3, 20, status="in_progress")]),
        (25, [ev("ticket.priority_changed", 4, 25, priority="P1")]),
    ]  # fmt: skip
    seen: list[tuple[str, dict[str, Any]]] = []
    for minutes, events in life:
        feed.now = (MONDAY + timedelta(minutes=minutes, seconds=1)).astimezone(UTC)
        await feed.record(*events)
        assert await publisher.publish_batch() > 0  # nothing more waiting
        seen += await feed.received(1)
    # Five hours on, P1's resolution (4 hours) has breached: its steps fire.
    feed.now = (MONDAY + timedelta(hours=5)).astimezone(UTC)
    firing = await fire_due(PostgresFiringStore(feed.pool), Composer(CONFIG), feed.now, 100)
    assert firing.fired
    await publisher.publish_batch()
    seen += await feed.received(1)
    feed.now = (MONDAY + timedelta(hours=5, minutes=5)).astimezone(UTC)
    await feed.record(ev("ticket.status_changed", 5, 305, status="resolved"))
    await publisher.publish_batch()
    seen += await feed.received(1)
    await feed.nothing_more()

    assert [body["version"] for _, body in seen] == [1, 2, 3, 4, 5, 6, 7]
    assert [key for key, _ in seen] == [
        "sla.okf.running", "sla.okf.running", "sla.okf.paused", "sla.okf.running",
        "sla.okf.running", "sla.okf.breached", "sla.okf.stopped",
    ]  # fmt: skip
    clocks = [{c["key"]: c for c in body["clocks"]} for _, body in seen]
    assert clocks[0]["response"]["state"] == "running"
    assert clocks[0]["response"]["next_step"]["fraction"] == 0.5
    assert clocks[1]["response"]["state"] == "met"
    assert clocks[1]["response"]["next_step"] is None
    assert clocks[2]["resolution"]["running"] is False
    assert clocks[4]["resolution"]["priority"] == "P1"  # retargeted
    assert clocks[4]["resolution"]["target_s"] < clocks[3]["resolution"]["target_s"]
    assert clocks[5]["resolution"]["state"] == "breached"
    assert clocks[6]["resolution"]["stopped_at"] is not None


async def test_a_version_committed_but_not_published_goes_out_later(feed: Feed) -> None:
    """The engine died after the commit (nothing claimed), and after claiming (the claim
    lapses): in both, the version is published, with the same message id."""
    feed.now = (MONDAY + timedelta(minutes=1)).astimezone(UTC)
    await feed.record(ev("ticket.created", 0, 0, department="okf", service="opus-loen",
                         priority="P3", subject="Løn"))  # fmt: skip
    # A publisher claims and dies before publishing.
    claimed = await PostgresFeedStore(feed.pool).claim(feed.now, 10, timedelta(seconds=30))
    assert [(t.ticket_id, t.version) for t in claimed] == [("LIFE-1", 1)]
    survivor = feed.publisher()
    await survivor.publish_batch()
    await feed.nothing_more()  # held by the dead one's claim
    feed.now += timedelta(seconds=30)
    await survivor.publish_batch()
    [(_, body)] = await feed.received(1)
    assert (body["ticket_id"], body["version"]) == ("LIFE-1", 1)


async def test_two_publishers_publish_each_version_once(feed: Feed) -> None:
    feed.now = (MONDAY + timedelta(minutes=1)).astimezone(UTC)
    tickets = [f"T-{n}" for n in range(300)]
    await feed.record(*(
        parse_event(json.dumps(event("ticket.created", t, 0, MONDAY, department="okf",
                                     service="opus-loen", priority="P3", subject="Løn")))
        for t in tickets
    ))  # fmt: skip
    # Many small claims, interleaved.
    first, second = feed.publisher(batch_size=7), feed.publisher(batch_size=7)

    pauses: list[float] = []

    async def drain(publisher: FeedPublisher) -> None:
        # The pause asked for is not waited here: the claims interleave as fast as can be.
        while True:
            before = publisher.published
            pauses.append(await publisher.publish_batch())
            if publisher.published == before:
                return

    await asyncio.gather(drain(first), drain(second))
    # Full batches (versions piling up) ask for a pause: the publisher keeps to its share.
    assert all(pause > 0 for pause in pauses)
    got = await feed.received(len(tickets))
    await feed.nothing_more()
    assert sorted(body["ticket_id"] for _, body in got) == sorted(tickets)
    assert first.published > 0
    assert second.published > 0
    assert first.published + second.published == len(tickets)


async def test_a_version_no_queue_is_bound_for_is_settled_and_not_returned(
    feed: Feed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frontends bind what they show; the rest the broker drops, sending nothing back."""
    returned: list[object] = []
    on_return = aiormq.Channel._on_return_frame

    async def spied(channel: aiormq.Channel, frame: Any) -> None:
        returned.append(frame)
        await on_return(channel, frame)

    monkeypatch.setattr(aiormq.Channel, "_on_return_frame", spied)
    await feed.queue.unbind(FEED_EXCHANGE, "sla.#")
    await feed.queue.bind(FEED_EXCHANGE, "sla.buf.#")  # another department's
    feed.now = (MONDAY + timedelta(minutes=1)).astimezone(UTC)
    await feed.record(ev("ticket.created", 0, 0, department="okf", service="opus-loen",
                         priority="P3", subject="Løn"))  # fmt: skip
    publisher = feed.publisher()
    await publisher.publish_batch()
    assert publisher.published == 1
    async with feed.pool.acquire() as connection:
        assert await connection.fetchval("SELECT count(*) FROM sla_feed") == 0
    await feed.nothing_more()
    assert returned == []


async def test_the_example_consumer_shows_each_new_version_once(feed: Feed) -> None:
    # docs/EVENTS.md points frontend authors at it: it must follow the feed as it says.
    consumer = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "examples" / "sla_feed_consumer.py"), AMQP_URL, "sla.okf.*",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert consumer.stdout is not None
    lines: list[str] = []

    async def printed(n: int) -> list[str]:
        assert consumer.stdout is not None
        while len(lines) < n:
            lines.append((await asyncio.wait_for(consumer.stdout.readline(), 20)).decode())
        return lines[:n]

    try:
        assert await printed(1) == ["following helpdesk.sla (sla.okf.*)\n"]
        publisher = feed.publisher()
        feed.now = (MONDAY + timedelta(minutes=1)).astimezone(UTC)
        await feed.record(ev("ticket.created", 0, 0, department="okf", service="opus-loen",
                             priority="P3", subject="Løn"))  # fmt: skip
        await publisher.publish_batch()
        [(key, first)] = await feed.received(1)
        feed.now = (MONDAY + timedelta(minutes=6)).astimezone(UTC)
        await feed.record(ev("ticket.responded", 1, 5))
        await publisher.publish_batch()
        await feed.received(1)
        # Another department's ticket: not bound. Then the first version again (a stale
        # one, as after a crash), and a ticket after it: the consumer's queue is in order,
        # so once the last is shown the stale one has been read and dropped.
        other = parse_event(json.dumps(event(
            "ticket.created", "SOF-1", 0, MONDAY + timedelta(minutes=7), department="sof",
            service="omsorgssystem", priority="P3", subject="Omsorg")))  # fmt: skip
        await feed.record(other)
        await publisher.publish_batch()
        channel = await feed.connection.channel()
        exchange = await channel.get_exchange(FEED_EXCHANGE)
        await exchange.publish(aio_pika.Message(json.dumps(first).encode()), routing_key=key)
        last = parse_event(json.dumps(event(
            "ticket.created", "LAST-1", 0, MONDAY + timedelta(minutes=8), department="okf",
            service="esdh", priority="P2", subject="Sag")))  # fmt: skip
        await feed.record(last)
        await publisher.publish_batch()
        shown = [line.split(":")[0] for line in (await printed(4))[1:]]
        assert shown == ["LIFE-1 v1", "LIFE-1 v2", "LAST-1 v1"]
    finally:
        consumer.terminate()
        await consumer.wait()
