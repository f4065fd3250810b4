"""Digests through each channel against its real server: held in the store, sent once by
the sender at the end of their window, with their stable id and their items."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import datetime, timedelta
from email.message import EmailMessage

import aio_pika
import pytest

from engine.notify.amqp import AmqpChannel
from engine.notify.budget import digest_id
from engine.notify.digest import DigestItem
from engine.notify.email import SmtpChannel
from engine.notify.notice import Channel, ChannelName
from engine.notify.sender import OutboxSender, SenderOptions
from engine.notify.webhook import WebhookChannel
from engine.store.errors import is_transient
from engine.store.memory.firing import MemoryFiringStore
from engine.store.memory.outbox import MemoryOutboxStore
from engine.store.memory.tables import Tables
from engine.store.outbox import HeldNotice
from tests.contract.test_firing_store import fired
from tests.integration import test_channels
from tests.integration.test_channels import Mailbox, Receiver, Subscriber
from tests.services import poll
from tests.unit.test_sender import Clock, _true, sending

pytestmark = pytest.mark.integration

# The real servers of the channels' own tests.
smtp_server = test_channels.smtp_server
receiver = test_channels.receiver
subscriber = test_channels.subscriber

WINDOW = timedelta(minutes=15)


async def held_digest(
    tables: Tables, channel: ChannelName, recipient: str, start: datetime, language: str = "da"
) -> None:
    """Two notices of ØKF's tickets A and B held for ``recipient``'s window from ``start``."""
    items = [
        DigestItem.of(fired(t, 0.5, start), zone="Europe/Copenhagen", catch_up=t == "B",
                      notice_id=digest_id(channel, t, start))
        for t in ("A", "B")
    ]  # fmt: skip
    held = [
        HeldNotice(channel, recipient, "Åse Ærøskøbing", language, start, start + WINDOW, i)  # type: ignore[arg-type]
        for i in items
    ]
    async with MemoryFiringStore(tables).transaction() as firing:
        await firing.record_steps([fired(t, 0.5, start) for t in ("A", "B")])
        await firing.hold_notices(held, {}, start)


async def send_through(tables: Tables, name: ChannelName, channel: Channel, clock: Clock) -> None:
    sender = OutboxSender(
        MemoryOutboxStore(tables), {name: channel}, SenderOptions(idle_s=5),
        transient=is_transient, now=clock,
    )  # fmt: skip
    async with sending(sender):
        await poll(
            lambda: _true(all(d.status == "sent" for d in tables.digests.values())),
            timeout_s=10, what="the digest sent",
        )  # fmt: skip
    assert sender.sent == 1


async def test_a_digest_arrives_by_mail_once_with_its_id_and_items(
    smtp_server: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp_server
    tables, clock = Tables(), Clock()
    await held_digest(tables, "email", "aase@okf.example.dk", clock.now, language="en")
    clock.now += WINDOW
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="SLA <sla@example.dk>")
    try:
        await send_through(tables, "email", channel, clock)
    finally:
        await channel.close()
    [envelope] = mailbox.envelopes
    assert isinstance(envelope.original_content, bytes)
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    ident = digest_id("email", "aase@okf.example.dk", clock.now - WINDOW)
    assert received["X-SLA-Engine-Notice-Id"] == str(ident)
    assert received["Subject"].startswith("[SLA digest] 2 escalations ")
    body = received.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Ticket A" in text
    assert "Ticket B" in text
    assert "[caught up, the clock has stopped]" in text


async def test_a_digest_is_posted_to_a_webhook_as_json_with_its_items(receiver: Receiver) -> None:
    tables, clock = Tables(), Clock()
    url = f"{receiver.base}/hook"
    await held_digest(tables, "webhook", url, clock.now)
    clock.now += WINDOW
    channel = WebhookChannel(secret=None)
    try:
        await send_through(tables, "webhook", channel, clock)
    finally:
        await channel.close()
    [(headers, raw)] = receiver.requests
    document = json.loads(raw)
    ident = str(digest_id("webhook", url, clock.now - WINDOW))
    assert headers["Idempotency-Key"] == ident
    assert document["digest_id"] == ident
    assert document["kind"] == "digest"
    assert document["count"] == 2
    assert [i["ticket_id"] for i in document["items"]] == ["A", "B"]
    assert [i["catch_up"] for i in document["items"]] == [False, True]


async def test_a_digest_is_published_on_the_bus_with_its_id(subscriber: Subscriber) -> None:
    tables, clock = Tables(), Clock()
    key = "escalation.operational.okf"
    await held_digest(tables, "amqp", key, clock.now)
    clock.now += WINDOW
    channel = AmqpChannel(subscriber.connection)
    try:
        await send_through(tables, "amqp", channel, clock)
    finally:
        await channel.close()
    ident = str(digest_id("amqp", key, clock.now - WINDOW))
    message = await subscriber.take(ident)
    assert message.routing_key == key
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    document = json.loads(message.body)
    assert document["count"] == 2
    assert document["subject"].startswith("[SLA samlet] 2 eskaleringer ")
