"""The AMQP topology of ticket intake, declared idempotently by every engine at start."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

EXCHANGE = "helpdesk.tickets"
QUEUE = "sla-engine.intake"
DEAD_LETTER_EXCHANGE = "helpdesk.tickets.dlx"
DEAD_LETTER_QUEUE = "sla-engine.intake.dead"
BINDING_KEY = "ticket.#"
# A message redelivered this many times (the engine crashing on it each time) goes to
# the dead-letter queue instead of looping forever.
DELIVERY_LIMIT = 10
REASON_HEADER = "x-sla-engine-reason"


def routing_key(event_type: str) -> str:
    """The routing key of an event type: the type itself, ``ticket.<type>``."""
    return event_type


@dataclass(frozen=True)
class Topology:
    """The declared exchanges and queues."""

    tickets: AbstractExchange
    dead_letters: AbstractExchange
    intake: AbstractQueue
    dead: AbstractQueue


async def declare(channel: AbstractChannel) -> Topology:
    """Declare the exchanges and queues (idempotent: the same arguments every time)."""
    tickets = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dead_letters = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead = await channel.declare_queue(
        DEAD_LETTER_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dead_letters)
    intake = await channel.declare_queue(
        QUEUE,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
        },
    )
    await intake.bind(tickets, BINDING_KEY)
    return Topology(tickets, dead_letters, intake, dead)
