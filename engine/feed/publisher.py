"""The SLA feed publisher: claims tickets' new versions, publishes them, settles them.

A version is written in the transaction that changed the clocks (see
``engine.store.feed``), so a crash between that commit and the publish loses nothing: the
claim lapses and the version goes out later, with the same ``message_id``. Publishes are
confirmed by the broker before the claim is settled; a failed publish leaves the row to
go out again when its claim lapses.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from engine.feed.contract import FEED_EXCHANGE, feed_message, message_id, routing_key
from engine.loops import run_cycles
from engine.metrics import FEED_MESSAGES
from engine.store.errors import is_transient
from engine.store.feed import FeedStore, FeedTicket

log = structlog.get_logger(__name__)

CONTENT_TYPE = "application/json"


class FeedPublisher:
    """Publishes the SLA feed on a confirm channel of the daemon's broker connection."""

    def __init__(
        self,
        store: FeedStore,
        connection: AbstractRobustConnection,
        *,
        batch_size: int = 500,
        lease: timedelta = timedelta(seconds=30),
        idle_s: float = 0.2,
        busy_share: float = 0.25,
        retry_max_s: float = 5.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._connection = connection  # the daemon's: not ours to close
        self._batch_size = batch_size
        self._lease = lease
        self._idle_s = idle_s
        self._busy_share = busy_share
        self._retry_max_s = retry_max_s
        self._now = now
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._wake = asyncio.Event()
        self.published = 0

    def wake(self) -> None:
        """Look for new versions now rather than at the end of the idle pause."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Publish until ``stopping`` is set; the batch under way is finished first."""
        await run_cycles(
            self.publish_batch,
            wake=self._wake,
            stopping=stopping,
            transient=_transient,
            max_delay_s=self._retry_max_s,
            event="feed.unavailable",
        )

    async def publish_batch(self) -> float:
        """Claim, publish and settle one batch; the seconds to pause before the next.

        While versions pile up (a full batch: intake is taking a backlog) the publisher
        keeps to ``busy_share`` of the time, pausing between batches: it runs in intake's
        process, and every version it leaves waiting meanwhile is overwritten by the
        ticket's next one, so it publishes fewer, later, and loses nothing.
        """
        began = time.monotonic()
        # Before the first claim: the engine declares the exchange as it starts, so that
        # a frontend binding its queue before any ticket changes finds it.
        exchange = await self._ready_exchange()
        claimed = await self._store.claim(self._now(), self._batch_size, self._lease)
        if not claimed:
            return self._idle_s
        outcomes = await asyncio.gather(
            *(self._publish(exchange, ticket) for ticket in claimed), return_exceptions=True
        )
        published = [
            (ticket.ticket_id, ticket.version)
            for ticket, outcome in zip(claimed, outcomes, strict=True)
            if outcome is None
        ]
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        # Counted as the broker confirmed them: a settle that fails after this leaves
        # them to go out again when their claims lapse, and each time is counted.
        self.published += len(published)
        FEED_MESSAGES.labels("published").inc(len(published))
        await self._store.settle(published)
        if failures:
            FEED_MESSAGES.labels("failed").inc(len(failures))
            # The unsettled ones go out again when their claim lapses.
            log.warning("feed.publish_failed", failed=len(failures), error=repr(failures[0]))
            await self._drop()
            return self._idle_s
        if len(claimed) < self._batch_size:
            return self._idle_s
        spent = time.monotonic() - began
        return spent * (1 - self._busy_share) / self._busy_share

    async def close(self) -> None:
        await self._drop()

    async def _publish(self, exchange: AbstractExchange, ticket: FeedTicket) -> None:
        message = feed_message(ticket)
        await exchange.publish(
            aio_pika.Message(
                message.model_dump_json().encode(),
                content_type=CONTENT_TYPE,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=message_id(ticket),
                type="sla.ticket",
            ),
            routing_key=routing_key(ticket, message.state),
            # A version no frontend's queue is bound for is nobody's loss: the broker
            # drops it, as a topic exchange does. Mandatory, it came back in full for
            # nothing (a Basic.Return, its header and body, read and parsed here).
            mandatory=False,
        )

    async def _ready_exchange(self) -> AbstractExchange:
        if self._channel is None or self._channel.is_closed or self._exchange is None:
            await self._drop()
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.declare_exchange(
                FEED_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchange

    async def _drop(self) -> None:
        channel, self._channel, self._exchange = self._channel, None, None
        if channel is not None and not channel.is_closed:
            try:
                await channel.close()
            except CONNECTION_EXCEPTIONS as exc:  # closing a channel of a lost connection
                log.debug("feed.channel_close_failed", error=repr(exc))


def _transient(error: BaseException) -> bool:
    """The database or the broker away: the cycle is tried again."""
    return is_transient(error) or isinstance(error, CONNECTION_EXCEPTIONS)
