"""Messages a broken or hostile frontend may send, each with what its refusal must say.

The intake tests, the fuzz test and the fault suite's malformed flood all send these.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

import aio_pika
import asyncpg

from engine.intake import topology
from engine.intake.consumer import MAX_MESSAGE_BYTES
from engine.intake.publish import publish_events
from tests.services import AMQP_URL, poll
from tests.streams import FUTURE_MONDAY

_NAMESPACE = UUID("9d1c7a52-4e0b-4f43-8f6e-1c2b3a4d5e6f")


@dataclass(frozen=True)
class Poison:
    """One bad message: its class, its body, and the refusal it must get."""

    name: str
    body: bytes
    kind: str  # the label of sla_intake_dead_letters_total
    says: str  # what the reason header must contain
    message_id: str = ""


def _event(n: int, type_: str, ticket_id: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "event_id": str(uuid5(_NAMESPACE, f"{type_}/{ticket_id}/{n}")),
        "type": type_,
        "ticket_id": ticket_id,
        "occurred_at": at,
        "channel": "web",
        **fields,
    }


def _created(n: int, ticket_id: str, at: str, **fields: Any) -> dict[str, Any]:
    data = {"department": "buf", "service": "esdh", "priority": "P2", "subject": "Poison"}
    return _event(n, "ticket.created", ticket_id, at, **{**data, **fields})


def _json(data: object) -> bytes:
    return json.dumps(data).encode()


# Log events that mean a batch went back to the queue or was recorded one by one: none of
# them may follow a bad message.
TROUBLE = frozenset({"intake.record_failed", "intake.dead_letter_failed", "intake.read_failed"})
NORMAL_AT = FUTURE_MONDAY.isoformat()
# Ahead of FUTURE_MONDAY by more than the test engines take (tests.streams.AHEAD_S).
FAR_AHEAD_AT = (FUTURE_MONDAY + timedelta(days=5 * 366)).isoformat()
RANGE_SAYS = "1970-01-01T00:00:00Z"


def poison_classes(n: int, created_ticket: str | None = None) -> list[Poison]:
    """One message of every class of bad input, with ids of their own for ``n``.

    ``created_ticket`` names a ticket created before these arrive: it gets a second
    ``ticket.created``, dated 1990.
    """
    ticket = f"POISON-{n}"
    comment = _event(n, "ticket.commented", ticket, NORMAL_AT, visibility="public", body="x")
    lone_surrogate = _json(comment).replace(b'"x"', b'"\\udc00"')
    year_2300 = _event(
        n, "ticket.status_changed", ticket, "2300-01-01T09:00:00+01:00", status="in_progress"
    )
    far_ahead = _event(n, "ticket.status_changed", ticket, FAR_AHEAD_AT, status="pending_customer")
    nul_comment = _event(
        n, "ticket.commented", ticket, NORMAL_AT, visibility="internal", body="\x00"
    )
    huge = _event(n, "ticket.priority_changed", ticket, NORMAL_AT, priority=10**4000)
    # JSON 4.0 is a number Python reads as a float: the score must be a JSON integer.
    float_score = _json(_event(n, "ticket.rated", ticket, NORMAL_AT, score=4)).replace(
        b'"score": 4', b'"score": 4.0'
    )
    unknown = _created(n, ticket, NORMAL_AT, department="nowhere")
    classes = [
        Poison("not-json", b'{"schema_version": 1, "event_id": ', "malformed", "Invalid JSON"),
        Poison("nested", b"[" * 5000 + b"]" * 5000, "malformed", "recursion limit"),
        Poison("surrogate", lone_surrogate, "malformed", "surrogate"),
        Poison("not-contract", _json({"schema_version": 1}), "invalid", "invalid event"),
        Poison("too-large", b"x" * (MAX_MESSAGE_BYTES + 1), "too_large", "exceeds"),
        Poison("unknown-department", _json(unknown), "unknown_reference", "refers to nothing"),
        Poison(
            "year-1", _json(_created(n, ticket, "0001-01-01T00:30:00+01:00")), "invalid", RANGE_SAYS
        ),
        Poison(
            "year-9999",
            _json(_event(n, "ticket.responded", ticket, "9999-12-31T23:59:59-23:59")),
            "invalid",
            RANGE_SAYS,
        ),
        Poison("year-2300", _json(year_2300), "invalid", RANGE_SAYS),
        Poison("far-ahead", _json(far_ahead), "out_of_range", "ahead of the engine's clock"),
        Poison(
            "nul-subject", _json(_created(n, ticket, NORMAL_AT, subject="a\x00b")), "invalid", "NUL"
        ),
        Poison("nul-comment", _json(nul_comment), "invalid", "NUL"),
        Poison("huge-number", _json(huge), "invalid", "priority"),
        Poison("float-score", float_score, "invalid", "score: Input should be a valid integer"),
    ]
    if created_ticket is not None:
        second = _created(n, created_ticket, "1990-01-01T09:00:00+01:00")
        classes.append(Poison("second-creation", _json(second), "second_creation", "already"))
    return [replace(p, message_id=f"poison-{p.name}-{n}") for p in classes]


async def publish_with_ids(bodies: Sequence[tuple[bytes, str]]) -> None:
    """Publish raw bodies, each with its message id, as a frontend would."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = (await topology.declare(channel)).tickets
        for body, message_id in bodies:
            await exchange.publish(
                aio_pika.Message(
                    body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
                ),
                routing_key="ticket.created",
            )


async def settled(db: asyncpg.Connection, held: Callable[[], int]) -> None:
    """Wait until every message published so far is settled: a last good event is
    recorded (so all before it were delivered) and the engine holds no message."""
    sentinel = _created(0, f"{SENTINEL}{uuid4().hex[:12]}", NORMAL_AT)
    await publish_events([_json(sentinel)], AMQP_URL)

    async def done() -> bool:
        found = await db.fetchval(
            "SELECT count(*) FROM events WHERE event_id = $1", UUID(sentinel["event_id"])
        )
        return bool(found) and held() == 0

    await poll(done, what="every message settled")


# The ticket ids of the events ``settled`` sends.
SENTINEL = "SENTINEL-"


async def dead_letters(
    channel: aio_pika.abc.AbstractChannel,
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Every message in the dead-letter queue, taken off it."""
    dead = await channel.get_queue(topology.DEAD_LETTER_QUEUE)
    found = []
    while (message := await dead.get(fail=False, no_ack=True)) is not None:
        found.append(message)
    return found
