"""Publish ticket events to ``helpdesk.tickets``, as a frontend would: from files or bytes.

Used to load example days, by the benchmark, and by tests that feed the intake. Every
message is persistent and confirmed by the broker before it counts as published.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import aio_pika
import structlog
from pydantic import ValidationError

from engine.events import parse_event
from engine.events.lines import described, numbered_lines
from engine.intake import topology
from engine.settings import redact_url

CONTENT_TYPE = "application/json"
INVALID_ROUTING_KEY = "ticket.invalid"
CONFIRM_BATCH = 500  # publishes in flight at once, awaiting their confirms together
# A type is used as routing key only when the intake's binding would route it; anything
# else (no type, not a string, not ticket.*) still reaches the intake, to be refused there.
_ROUTABLE_TYPE = re.compile(r"ticket\.[A-Za-z0-9_.-]{1,200}")

log = structlog.get_logger(__name__)


@dataclass
class PublishReport:
    """What became of a file's lines: how many were published, which were refused and why."""

    published: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


def envelope_of(raw: bytes) -> tuple[str, str | None]:
    """Return the routing key and message id of one raw message, without validating it."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # also UnicodeDecodeError; nested too deep
        return INVALID_ROUTING_KEY, None
    if not isinstance(data, dict):
        return INVALID_ROUTING_KEY, None
    kind = data.get("type")
    routing_key = (
        topology.routing_key(kind)
        if isinstance(kind, str) and _ROUTABLE_TYPE.fullmatch(kind)
        else INVALID_ROUTING_KEY
    )
    event_id = data.get("event_id")
    message_id = None
    if isinstance(event_id, str):
        try:
            message_id = str(UUID(event_id))
        except ValueError:
            message_id = None
    return routing_key, message_id


def message_of(raw: bytes) -> tuple[aio_pika.Message, str]:
    """Return the persistent AMQP message for one event and its routing key."""
    routing_key, message_id = envelope_of(raw)
    message = aio_pika.Message(
        raw,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
    )
    return message, routing_key


async def publish_events(events: Iterable[bytes | str], amqp_url: str) -> int:
    """Publish raw events as they are, each confirmed; return how many were published.

    Declares the topology first. Raises ``aio_pika.exceptions.DeliveryError`` when the
    broker refuses a message; the ones confirmed before it stay published.
    """
    published = 0
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = (await topology.declare(channel)).tickets
        for chunk in _chunks(events, CONFIRM_BATCH):
            messages = [message_of(raw) for raw in chunk]
            await asyncio.gather(
                *(exchange.publish(message, routing_key=key) for message, key in messages)
            )
            published += len(messages)
    log.info("intake.publish.done", published=published, broker=redact_url(amqp_url))
    return published


async def publish_file(path: Path, amqp_url: str, *, validate: bool = True) -> PublishReport:
    """Publish a JSON-lines file, one event a line; refuse lines that fail the contract.

    Blank lines are skipped. With ``validate=False`` every line is sent as it is, for
    tests that feed the intake bad input. The file is read as it is published.
    """
    report = PublishReport()

    def accepted() -> Iterator[bytes]:
        for number, raw in numbered_lines(path):
            reason = refusal_of(raw) if validate else None
            if reason is not None:
                report.refused.append((number, reason))
                continue
            yield raw

    report.published = await publish_events(accepted(), amqp_url)
    return report


def refusal_of(raw: bytes) -> str | None:
    """Return why an event fails the contract, naming each bad field, or None if it passes."""
    try:
        parse_event(raw)
    except ValidationError as exc:
        return described(exc)
    return None


def _chunks(events: Iterable[bytes | str], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for event in events:
        chunk.append(event.encode("utf-8") if isinstance(event, str) else event)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
