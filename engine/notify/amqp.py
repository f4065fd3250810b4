"""The AMQP channel: escalation notices published to the ``helpdesk.escalations`` exchange."""

from __future__ import annotations

import asyncio

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from engine.notify.notice import ChannelName, DeliveryError, Notice, body_of

ESCALATION_EXCHANGE = "helpdesk.escalations"
CONTENT_TYPE = "application/json"
NOTICE_ID_HEADER = "x-sla-engine-notice-id"
_MAX_ROUTING_KEY_BYTES = 255  # AMQP 0-9-1 shortstr

log = structlog.get_logger(__name__)


class AmqpChannel:
    """Publishes each notice's payload, confirmed, on a channel of the daemon's connection.

    The routing key is ``notice.recipient`` (``escalation.tactical.okf``, say). Publishes are
    not mandatory: a key no queue is bound to is dropped by the broker, as for any topic
    subscriber that is not listening, and counts as delivered.
    """

    name: ChannelName = "amqp"

    def __init__(self, connection: AbstractRobustConnection, *, timeout_s: float = 10.0) -> None:
        self._connection = connection  # the daemon's: not ours to close
        self.timeout_s = timeout_s
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        # Concurrent first deliveries must open one channel, not one each.
        self._opening = asyncio.Lock()

    def __repr__(self) -> str:
        return f"AmqpChannel(exchange={ESCALATION_EXCHANGE!r}, timeout_s={self.timeout_s})"

    async def _ready_exchange(self) -> AbstractExchange:
        async with self._opening:
            if self._channel is None or self._channel.is_closed or self._exchange is None:
                await self._drop()
                self._channel = await self._connection.channel(publisher_confirms=True)
                # Declaring is idempotent, and makes the first notice routable to the
                # exchange even before any subscriber has declared it.
                self._exchange = await self._channel.declare_exchange(
                    ESCALATION_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
                )
            return self._exchange

    async def deliver(self, notice: Notice) -> None:
        """Publish one notice and wait for the broker's confirm, or raise ``DeliveryError``."""
        routing_key = notice.recipient
        if not routing_key or len(routing_key.encode()) > _MAX_ROUTING_KEY_BYTES:
            raise DeliveryError(
                f"routing key must be 1 to {_MAX_ROUTING_KEY_BYTES} bytes: {routing_key!r}",
                permanent=True,
            )
        try:
            body = body_of(notice.payload)
        except (TypeError, ValueError) as exc:
            raise DeliveryError(f"payload is not JSON: {exc}", permanent=True) from exc
        message = aio_pika.Message(
            body,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(notice.notice_id),
            headers={NOTICE_ID_HEADER: str(notice.notice_id)},
        )
        try:
            # One deadline over opening and publishing: a robust connection that is
            # reconnecting would otherwise keep the caller waiting without limit.
            async with asyncio.timeout(self.timeout_s):
                exchange = await self._ready_exchange()
                await exchange.publish(message, routing_key=routing_key, mandatory=False)
        except aio_pika.exceptions.DeliveryError as exc:
            await self._discard()
            raise DeliveryError(
                f"broker did not confirm the notice on {ESCALATION_EXCHANGE} "
                f"with key {routing_key}: {exc}",
                permanent=False,
            ) from exc
        except CONNECTION_EXCEPTIONS as exc:  # closed channel or connection; OSError: timeout
            await self._discard()
            raise DeliveryError(
                f"cannot publish to {ESCALATION_EXCHANGE}: {type(exc).__name__}: {exc}",
                permanent=False,
            ) from exc

    async def _discard(self) -> None:
        # After a failure the channel's state is unknown; the next delivery opens a new one.
        async with self._opening:
            await self._drop()

    async def _drop(self) -> None:
        channel, self._channel, self._exchange = self._channel, None, None
        if channel is None or channel.is_closed:
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                await channel.close()
        except CONNECTION_EXCEPTIONS as exc:  # OSError includes the timeout
            # Already broken: forgetting it is what matters, but say so.
            log.warning("notify.amqp.channel_close_failed", error=f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Close the channel this channel opened; the connection stays open."""
        async with self._opening:
            await self._drop()
