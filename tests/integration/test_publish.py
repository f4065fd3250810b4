"""Publishing ticket events to the real RabbitMQ, observed through a private queue.

The intake queue ``sla-engine.intake`` belongs to other tests and the daemon: these tests
never consume or purge it. They bind a temporary queue of their own to the ticket
exchange and look only at messages carrying this run's ticket ids, so events published
by anyone else at the same time do not disturb them. Only valid events are published, and
few: every one of them is also routed to the intake queue, for its next consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractExchange, AbstractIncomingMessage, AbstractQueue
from structlog.testing import capture_logs
from yarl import URL

from engine.events import SCHEMA_VERSION
from engine.intake import topology
from engine.intake.publish import CONTENT_TYPE, publish_events, publish_file
from engine.settings import redact_url

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("SLA_ENGINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DEADLINE_S = 10.0


def ticket_id_of(message: AbstractIncomingMessage) -> str:
    """The ticket id in a message's body; "" when there is none (others may send junk)."""
    try:
        data = json.loads(message.body)
    except ValueError:
        return ""
    ticket_id = data.get("ticket_id") if isinstance(data, dict) else None
    return ticket_id if isinstance(ticket_id, str) else ""


@dataclass
class Listener:
    """A private queue bound to the ticket exchange, and what it has received so far.

    It is also bound to a marker key of its own, outside ``ticket.#``, so the marker it
    sends itself reaches no other queue.
    """

    queue: AbstractQueue
    exchange: AbstractExchange
    marker_key: str
    inbox: asyncio.Queue[AbstractIncomingMessage] = field(default_factory=asyncio.Queue)

    async def drain(self) -> list[AbstractIncomingMessage]:
        """Everything received so far, to a marker sent now; polls with a deadline.

        Call it after the publishes under test were confirmed: they are in the queue
        before the marker, so once the marker is here every copy of them is too.
        """
        await self.exchange.publish(aio_pika.Message(b"marker"), routing_key=self.marker_key)
        received: list[AbstractIncomingMessage] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while (remaining_s := deadline - loop.time()) > 0:
            try:
                message = await asyncio.wait_for(self.inbox.get(), remaining_s)
            except TimeoutError:
                break
            if message.routing_key == self.marker_key:
                return received
            received.append(message)
        pytest.fail(f"the marker did not come back within {DEADLINE_S}s")


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await topology.declare(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(declared.tickets, topology.BINDING_KEY)
        marker_key = f"sla-engine-test.marker.{uuid.uuid4().hex}"
        await queue.bind(declared.tickets, marker_key)
        listening = Listener(queue, declared.tickets, marker_key)

        async def take(message: AbstractIncomingMessage) -> None:
            await message.ack()
            await listening.inbox.put(message)

        await queue.consume(take)
        yield listening


@pytest.fixture
def run_id() -> str:
    """A token in this test's ticket ids, telling its messages from anyone else's."""
    return uuid.uuid4().hex[:12]


def event(ticket_id: str, kind: str = "ticket.responded", **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": str(uuid.uuid4()),
        "type": kind,
        "ticket_id": ticket_id,
        "occurred_at": "2026-11-23T09:15:00+01:00",
        "channel": "web",
        **fields,
    }


def created(ticket_id: str) -> dict[str, Any]:
    return event(
        ticket_id,
        "ticket.created",
        department="buf",
        service="skole-it-aula",
        priority="P3",
        subject="Kan ikke logge på Aula",
    )


def ours(messages: list[AbstractIncomingMessage], run_id: str) -> list[AbstractIncomingMessage]:
    return [m for m in messages if run_id in ticket_id_of(m)]


async def test_published_lines_arrive_persistent_with_key_and_id(
    listener: Listener, run_id: str, tmp_path: Path
) -> None:
    events = [
        created(f"T-{run_id}-1"),
        event(f"T-{run_id}-1", "ticket.assigned", function="pc-software"),
        event(f"T-{run_id}-1", "ticket.status_changed", status="in_progress"),
        created(f"T-{run_id}-2"),
        event(f"T-{run_id}-2", "ticket.commented", visibility="public", body="Vi kigger på det"),
    ]
    lines = [json.dumps(e, ensure_ascii=False) for e in events]
    path = tmp_path / "events.jsonl"
    # A byte order mark, a blank line and a line of spaces, as editors leave them.
    text = "\n".join([lines[0], "", *lines[1:], "   "]) + "\n"
    path.write_text("\ufeff" + text, encoding="utf-8")

    report = await publish_file(path, AMQP_URL)
    assert report.published == len(events)
    assert report.refused == []

    received = ours(await listener.drain(), run_id)
    by_id = {m.message_id: m for m in received}
    assert len(received) == len(by_id) == len(events)  # each exactly once
    for sent, line in zip(events, lines, strict=True):
        message = by_id[sent["event_id"]]
        assert message.routing_key == sent["type"]
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.content_type == CONTENT_TYPE
        assert message.body == line.encode("utf-8")
        assert message.exchange == topology.EXCHANGE


async def test_an_invalid_line_is_refused_with_its_number_and_not_sent(
    listener: Listener, run_id: str, tmp_path: Path
) -> None:
    good = [created(f"T-{run_id}-1"), event(f"T-{run_id}-1")]
    naive = event(f"T-{run_id}-1", occurred_at="2026-11-23T09:15:00")
    unknown_field = {**event(f"T-{run_id}-2"), "colour": "blue"}
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(good[0]),  # 1
        json.dumps(naive),  # 2
        "",  # 3: skipped, but counted
        "{this is not json",  # 4
        json.dumps(unknown_field),  # 5
        json.dumps(good[1]),  # 6
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = await publish_file(path, AMQP_URL)

    assert report.published == 2
    assert [number for number, _ in report.refused] == [2, 4, 5]
    reasons = dict(report.refused)
    assert reasons[2].startswith("occurred_at: ")
    assert reasons[4].startswith("Invalid JSON")
    assert reasons[5] == "colour: Extra inputs are not permitted"
    received = ours(await listener.drain(), run_id)
    assert sorted(m.message_id or "" for m in received) == sorted(e["event_id"] for e in good)


async def test_publish_events_takes_text_and_bytes_and_logs_no_password(
    listener: Listener, run_id: str
) -> None:
    first, second = created(f"T-{run_id}-1"), event(f"T-{run_id}-1")
    with capture_logs() as logs:
        count = await publish_events(
            [json.dumps(first), json.dumps(second).encode("utf-8")], AMQP_URL
        )
    assert count == 2
    [done] = [entry for entry in logs if entry["event"] == "intake.publish.done"]
    assert done["published"] == 2
    assert done["broker"] == redact_url(AMQP_URL)
    password = URL(AMQP_URL).password
    if password:
        rendered = [str(value) for entry in logs for value in entry.values()]
        assert not [text for text in rendered if f":{password}@" in text]
    received = ours(await listener.drain(), run_id)
    assert {m.message_id for m in received} == {first["event_id"], second["event_id"]}


async def test_nothing_to_publish_publishes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    report = await publish_file(path, AMQP_URL)
    assert (report.published, report.refused) == (0, [])
