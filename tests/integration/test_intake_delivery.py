"""Intake's own consumer on the real broker: deliveries in order, batch acks, and taken up
again after the connection drops or the broker cancels it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from structlog.testing import capture_logs

from engine.intake.delivery import Delivery, Subscription
from tests.services import AMQP_URL, poll

pytestmark = pytest.mark.integration


class Proxy:
    """A TCP proxy in front of the broker whose connections a test can cut."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        target = urlsplit(AMQP_URL)
        self._target = (target.hostname or "127.0.0.1", target.port or 5672)

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        url = urlsplit(AMQP_URL)
        netloc = url.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{port}"
        return urlunsplit(url._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) > 1 else host))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, upstream_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        """Drop every connection made so far, as a network failure would."""
        writers, self._writers = self._writers, []
        for writer in writers:
            writer.transport.abort()

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()


@pytest.fixture
async def queue_name() -> AsyncIterator[str]:
    name = f"test.delivery.{uuid4().hex[:8]}"
    yield name
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def subscribed(
    connection: AbstractRobustConnection, name: str
) -> tuple[Subscription, list[Delivery]]:
    """The quorum queue declared on a robust channel, and a subscription to it started,
    with the list its deliveries go to."""
    channel = await connection.channel()
    assert isinstance(channel, AbstractRobustChannel)
    await channel.set_qos(prefetch_count=100)
    await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    got: list[Delivery] = []
    subscription = Subscription(channel, name, got.append)
    await subscription.start()
    return subscription, got


async def publish(name: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, message_id=body.decode()), routing_key=name
            )


async def ready_in(name: str) -> int:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(name, passive=True)
        return int(queue.declaration_result.message_count or 0)


async def test_deliveries_come_in_order_and_one_multiple_ack_settles_them(
    queue_name: str,
) -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        subscription, got = await subscribed(connection, queue_name)
        assert subscription.consuming
        bodies = [f"m-{n}".encode() for n in range(30)]
        await publish(queue_name, bodies)

        async def all_in() -> bool:
            return len(got) == len(bodies)

        await poll(all_in, what="every message delivered")
        assert [d.body for d in got] == bodies
        assert [d.message_id for d in got] == [b.decode() for b in bodies]
        assert {d.routing_key for d in got} == {queue_name}
        await got[-1].ack(multiple=True)
        await subscription.stop()
        assert not subscription.consuming
    # Nothing came back to the queue when the consumer's channel closed: all were acked.
    assert await ready_in(queue_name) == 0


async def test_a_nack_hands_a_message_back(queue_name: str) -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        subscription, got = await subscribed(connection, queue_name)
        await publish(queue_name, [b"once", b"twice"])

        async def two() -> bool:
            return len(got) >= 2

        await poll(two, what="both delivered")
        await got[0].ack()
        await got[1].nack(requeue=True)

        async def again() -> bool:
            return len(got) >= 3

        await poll(again, what="the nacked one delivered again")
        assert got[2].body == b"twice"
        await got[2].ack()
        await subscription.stop()


async def test_consuming_goes_on_after_the_connection_drops(queue_name: str) -> None:
    proxy = Proxy()
    url = await proxy.start()
    try:
        connection = await aio_pika.connect_robust(url, reconnect_interval=0.2)
        async with connection:
            subscription, got = await subscribed(connection, queue_name)
            await publish(queue_name, [b"before"])

            async def first() -> bool:
                return len(got) == 1

            await poll(first, what="the first message")
            with capture_logs() as logs:
                proxy.cut()  # unacked: the broker delivers it again after the reconnect

                async def back() -> bool:
                    return subscription.consuming and any(d.body == b"before" for d in got[1:])

                await poll(back, timeout_s=30, what="consuming again, the unacked one again")
            assert {"event": "intake.consuming_again", "queue": queue_name,
                    "cause": "reconnected", "log_level": "info"} in logs  # fmt: skip
            await publish(queue_name, [b"after"])

            async def after() -> bool:
                return any(d.body == b"after" for d in got)

            await poll(after, timeout_s=30, what="a message published after the reconnect")
            await got[-1].ack(multiple=True)
            await subscription.stop()
    finally:
        await proxy.stop()


async def test_consuming_goes_on_after_the_broker_cancels_the_consumer(queue_name: str) -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        subscription, got = await subscribed(connection, queue_name)
        with capture_logs() as logs:
            # Deleting the queue cancels its consumers (basic.cancel from the broker).
            admin = await aio_pika.connect(AMQP_URL)
            async with admin:
                other = await admin.channel()
                await other.queue_delete(queue_name)

                async def cancelled() -> bool:
                    return not subscription.consuming

                await poll(cancelled, what="the broker's cancel")
                await other.declare_queue(
                    queue_name, durable=True, arguments={"x-queue-type": "quorum"}
                )
            await publish(queue_name, [b"declared again"])

            async def delivered() -> bool:
                return subscription.consuming and [d.body for d in got] == [b"declared again"]

            await poll(delivered, timeout_s=30, what="consuming the queue declared again")
        events = [entry["event"] for entry in logs]
        assert "intake.consumer_cancelled" in events
        assert "intake.consuming_again" in events
        await got[0].ack()
        await subscription.stop()
