"""The three delivery channels against real servers: SMTP, HTTP and the RabbitMQ broker."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import partial
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.notify.amqp import ESCALATION_EXCHANGE, AmqpChannel
from engine.notify.email import SmtpChannel
from engine.notify.notice import CHANNELS, Channel, DeliveryError, Notice, body_of
from engine.notify.webhook import (
    SIGNATURE_TOLERANCE_S,
    WebhookChannel,
    sign,
    verify_signature,
)
from tests.services import AMQP_URL, free_port, poll

pytestmark = pytest.mark.integration

SECRET = "delt-hemmelighed-æøå"
PAYLOAD: dict[str, Any] = {
    "ticket_id": "T-2026-0042",
    "department": "okf",
    "tier": "tactical",
    "fraction": 1.0,
    "summary": "Løsningstiden er overskredet for Økonomisystemet på Ærø",
}


def notice(channel: Any, recipient: str, **fields: Any) -> Notice:
    defaults: dict[str, Any] = {
        "notice_id": uuid.uuid4(),
        "channel": channel,
        "recipient": recipient,
        "recipient_name": "Åse Ærøskøbing",
        "subject": "Eskalering: sag T-2026-0042 har overskredet løsningstiden (æøå ÆØÅ)",
        "body": "Kære systemejer\n\nSagen er nu på taktisk niveau. Første svar: på vej.\n",
        "payload": PAYLOAD,
    }
    return Notice(**{**defaults, **fields})


def test_every_channel_meets_the_port() -> None:
    channels: list[Channel] = [
        SmtpChannel(host="127.0.0.1", port=25, sender="sla@example.dk"),
        WebhookChannel(secret=None),
    ]
    assert [c.name for c in channels] == ["email", "webhook"]
    # The sender finds a notice's channel by its name: every name a notice can carry.
    assert {SmtpChannel.name, WebhookChannel.name, AmqpChannel.name} == set(CHANNELS)


# --- e-mail ----------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it accepts, refuses RCPT or DATA when told to."""

    refuse_rcpt: str | None = None
    refuse_data: str | None = None
    envelopes: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(  # aiosmtpd calls hooks by these names
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse_rcpt is not None:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse_data is not None:
            return self.refuse_data
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on 127.0.0.1; change the mailbox's refusals in the test."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def test_smtp_repr_masks_the_password() -> None:
    channel = SmtpChannel(host="smtp.example.dk", port=587, sender="s@example.dk",
                          starttls=True, username="u", password="hunter2")  # fmt: skip
    assert "hunter2" not in repr(channel)
    assert "***" in repr(channel)


def test_smtp_login_without_tls_is_refused_unless_allowed() -> None:
    login = partial(SmtpChannel, host="smtp.example.dk", port=25, sender="s@example.dk",
                    username="u", password="hunter2")  # fmt: skip
    with pytest.raises(ValueError, match="password in clear"):
        login()
    assert login(allow_plain_auth=True).username == "u"
    assert login(use_tls=True).username == "u"


async def test_mail_arrives_once_with_stable_id_and_danish_text(
    smtp_server: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp_server
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="SLA <sla@example.dk>")
    sent = notice("email", "aase@okf.example.dk")

    await channel.deliver(sent)
    await channel.close()

    assert len(mailbox.envelopes) == 1
    envelope = mailbox.envelopes[0]
    assert envelope.mail_from == "sla@example.dk"
    assert envelope.rcpt_tos == ["aase@okf.example.dk"]
    assert isinstance(envelope.original_content, bytes)
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Message-ID"] == f"<{sent.notice_id}@sla-engine>"
    assert received["X-SLA-Engine-Notice-Id"] == str(sent.notice_id)
    assert received["Subject"] == sent.subject
    assert received["Date"] is not None
    (to,) = received["To"].addresses
    assert (to.display_name, to.addr_spec) == ("Åse Ærøskøbing", "aase@okf.example.dk")
    body = received.get_body(("plain",))
    assert body is not None
    assert body.get_content_charset() == "utf-8"
    # SMTP carries lines ended by CRLF; the text itself, Danish letters and all, is intact.
    assert body.get_content().replace("\r\n", "\n") == sent.body


async def test_mails_of_one_clock_reply_to_one_thread_root(
    smtp_server: tuple[Mailbox, int],
) -> None:
    mailbox, port = smtp_server
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="sla@example.dk")
    thread = str(uuid.uuid4())
    steps = [notice("email", "aase@okf.example.dk", payload={**PAYLOAD, "thread": thread})
             for _ in range(2)]  # fmt: skip
    unthreaded = notice("email", "aase@okf.example.dk")  # a payload without a thread

    for sent in (*steps, unthreaded):
        await channel.deliver(sent)
    await channel.close()

    received = [
        email.message_from_bytes(e.original_content, policy=email.policy.default)
        for e in mailbox.envelopes
        if isinstance(e.original_content, bytes)
    ]
    assert len(received) == 3
    for message, sent in zip(received[:2], steps, strict=True):
        assert message["Message-ID"] == f"<{sent.notice_id}@sla-engine>"  # its own
        assert message["In-Reply-To"] == message["References"] == f"<{thread}@sla-engine>"
    assert received[2]["In-Reply-To"] is None
    assert received[2]["References"] is None


@pytest.mark.parametrize(
    ("refusal", "permanent"),
    [
        ({"refuse_rcpt": "550 no such user"}, True),
        ({"refuse_rcpt": "451 try again later"}, False),
        ({"refuse_data": "554 message rejected as spam"}, True),
        ({"refuse_data": "452 mailbox full"}, False),
    ],
)
async def test_smtp_refusals_are_classified_by_reply_code(
    smtp_server: tuple[Mailbox, int], refusal: dict[str, str], permanent: bool
) -> None:
    mailbox, port = smtp_server
    mailbox.refuse_rcpt = refusal.get("refuse_rcpt")
    mailbox.refuse_data = refusal.get("refuse_data")
    channel = SmtpChannel(host="127.0.0.1", port=port, sender="sla@example.dk")

    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(notice("email", "nobody@okf.example.dk"))

    assert caught.value.permanent is permanent
    reply = next(iter(refusal.values()))
    code, _, text = reply.partition(" ")
    assert code in str(caught.value)
    assert text in str(caught.value)
    assert mailbox.envelopes == []


async def test_smtp_server_not_listening_is_temporary() -> None:
    channel = SmtpChannel(host="127.0.0.1", port=free_port(), sender="s@example.dk", timeout_s=2)

    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(notice("email", "aase@okf.example.dk"))

    assert caught.value.permanent is False
    assert "unreachable" in str(caught.value)


async def test_unmailable_address_is_permanent() -> None:
    channel = SmtpChannel(host="127.0.0.1", port=free_port(), sender="s@example.dk")

    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(notice("email", "aase@okf.example.dk\r\nBcc: x@example.dk"))

    assert caught.value.permanent is True


# --- webhook ---------------------------------------------------------------------------


NOW = 1_790_000_000  # a unix time for the signatures made here


def test_signature_round_trip_and_tampering() -> None:
    body = body_of(PAYLOAD)
    header = sign(SECRET, body, NOW)
    timestamp, digest = header.split(",")
    assert timestamp == f"t={NOW}"
    assert digest.startswith("v1=")
    # The HMAC covers "t.body", so a receiver can recompute it with any HMAC library.
    message = f"{NOW}.".encode() + body
    assert digest == "v1=" + hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert verify_signature(SECRET, body, header, now=NOW)
    assert not verify_signature("another secret!!", body, header, now=NOW)
    assert not verify_signature(SECRET, body + b" ", header, now=NOW)
    assert not verify_signature(SECRET, body, None, now=NOW)
    assert not verify_signature(SECRET, body, f"t={NOW},v1=æøå", now=NOW)
    assert not verify_signature(SECRET, body, digest, now=NOW)  # no time: refused
    # Another time with the same digest: the time is signed too.
    assert not verify_signature(SECRET, body, f"t={NOW + 1},{digest}", now=NOW)


def test_signature_refuses_a_replay_outside_the_tolerance() -> None:
    body = body_of(PAYLOAD)
    header = sign(SECRET, body, NOW)
    assert verify_signature(SECRET, body, header, now=NOW + SIGNATURE_TOLERANCE_S)
    assert verify_signature(SECRET, body, header, now=NOW - SIGNATURE_TOLERANCE_S)
    assert not verify_signature(SECRET, body, header, now=NOW + SIGNATURE_TOLERANCE_S + 1)
    assert not verify_signature(SECRET, body, header, now=NOW - SIGNATURE_TOLERANCE_S - 1)
    assert verify_signature(SECRET, body, header, now=NOW + 3600, tolerance_s=3600)


@pytest.mark.parametrize(
    "header",
    [f"t={NOW},t={NOW},v1=00", "t=,v1=00", "t=1e9,v1=00", "t=" + "9" * 5000 + ",v1=00",
     "t=١٢٣,v1=00", "", ",,,", "v1"],
)  # fmt: skip
def test_signature_header_malformed_is_refused(header: str) -> None:
    assert not verify_signature(SECRET, body_of(PAYLOAD), header, now=NOW)


def test_signature_accepts_any_of_several_v1_while_a_secret_changes() -> None:
    body = body_of(PAYLOAD)
    old = sign("the-old-secret-of-16", body, NOW).split(",")[1]
    header = f"{sign(SECRET, body, NOW)},{old}"
    assert verify_signature(SECRET, body, header, now=NOW)
    assert verify_signature("the-old-secret-of-16", body, header, now=NOW)


@pytest.mark.parametrize("secret", ["", "kort", "fifteen-bytes!!"])
def test_webhook_channel_refuses_a_short_secret(secret: str) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        WebhookChannel(secret=secret)


@dataclass
class Receiver:
    """A real HTTP server keeping the requests to /hook; /status/{code} answers that code."""

    base: str
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    kept: list[tuple[dict[str, str], bytes]] = []
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        kept.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        headers = {"Location": "http://elsewhere.example/hook"} if 300 <= code <= 399 else {}
        return web.Response(status=code, text=f"answer {code}", headers=headers)

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/status/{code}", status)
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield Receiver(f"http://{host}:{port}", kept, release)
    release.set()  # lets a slow handler finish, so cleanup does not wait for it
    await runner.cleanup()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookChannel]:
    channel = WebhookChannel(secret=SECRET, timeout_s=2, clock=lambda: NOW + 0.9)
    yield channel
    await channel.close()


async def test_webhook_posts_the_signed_payload_with_idempotency_key(
    receiver: Receiver, webhook: WebhookChannel
) -> None:
    sent = notice("webhook", f"{receiver.base}/hook")

    await webhook.deliver(sent)

    assert len(receiver.requests) == 1
    headers, raw = receiver.requests[0]
    assert raw == json.dumps(PAYLOAD, ensure_ascii=False, sort_keys=True).encode()
    assert json.loads(raw) == PAYLOAD
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == str(sent.notice_id)
    assert headers["X-SLA-Engine-Notice-Id"] == str(sent.notice_id)
    signature = headers["X-SLA-Engine-Signature"]
    assert signature.startswith(f"t={NOW},v1=")  # the channel's clock, whole seconds
    assert verify_signature(SECRET, raw, signature, now=NOW)
    assert not verify_signature("wrong secret, 16b", raw, signature, now=NOW)
    assert not verify_signature(SECRET, raw, signature, now=NOW + SIGNATURE_TOLERANCE_S + 1)


async def test_webhook_without_secret_sends_no_signature(receiver: Receiver) -> None:
    channel = WebhookChannel(secret=None)
    try:
        await channel.deliver(notice("webhook", f"{receiver.base}/hook"))
    finally:
        await channel.close()

    (headers, _), *_ = receiver.requests
    assert "X-SLA-Engine-Signature" not in headers


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(500, False), (503, False), (408, False), (429, False), (404, True), (400, True), (302, True)],
)
async def test_webhook_answers_are_classified_by_status(
    receiver: Receiver, webhook: WebhookChannel, code: int, permanent: bool
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await webhook.deliver(notice("webhook", f"{receiver.base}/status/{code}"))

    assert caught.value.permanent is permanent
    assert str(code) in str(caught.value)
    if code == 302:
        assert "http://elsewhere.example" in str(caught.value)
        assert "not followed" in str(caught.value)
    else:
        assert f"answer {code}" in str(caught.value)


async def test_webhook_timeout_and_refused_connection_are_temporary(receiver: Receiver) -> None:
    channel = WebhookChannel(secret=SECRET, timeout_s=0.3)
    try:
        with pytest.raises(DeliveryError) as slow:
            await channel.deliver(notice("webhook", f"{receiver.base}/slow"))
        with pytest.raises(DeliveryError) as refused:
            await channel.deliver(notice("webhook", f"http://127.0.0.1:{free_port()}/hook"))
    finally:
        await channel.close()

    assert slow.value.permanent is False
    assert refused.value.permanent is False


async def test_webhook_url_that_cannot_work_is_permanent(webhook: WebhookChannel) -> None:
    with pytest.raises(DeliveryError) as caught:
        await webhook.deliver(notice("webhook", "ftp://files.example.dk/hook"))
    assert caught.value.permanent is True


def test_webhook_repr_masks_the_secret() -> None:
    assert SECRET not in repr(WebhookChannel(secret=SECRET))


# --- AMQP ------------------------------------------------------------------------------


@dataclass
class Subscriber:
    """A private queue bound to the escalation exchange with ``escalation.#``."""

    connection: aio_pika.abc.AbstractRobustConnection
    queue: AbstractQueue

    async def take(self, message_id: str) -> AbstractIncomingMessage:
        """Wait for the message with this id; others' escalations are acked and skipped."""
        found: list[AbstractIncomingMessage] = []

        async def arrived() -> bool:
            message = await self.queue.get(fail=False)
            if message is None:
                return False
            await message.ack()
            if message.message_id == message_id:
                found.append(message)
            return bool(found)

        await poll(arrived, timeout_s=10, what=f"escalation message {message_id}")
        return found[0]


@pytest.fixture
async def subscriber() -> AsyncIterator[Subscriber]:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            ESCALATION_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, "escalation.#")
        yield Subscriber(connection, queue)


async def test_amqp_publishes_persistent_json_with_key_and_id(subscriber: Subscriber) -> None:
    channel: Channel = AmqpChannel(subscriber.connection)
    sent = notice("amqp", "escalation.tactical.okf")
    try:
        await channel.deliver(sent)
        received = await subscriber.take(str(sent.notice_id))
        # Closing releases the channel only; a later notice opens a new one.
        await channel.close()
        again = notice("amqp", "escalation.strategic.okf")
        await channel.deliver(again)
        received_again = await subscriber.take(str(again.notice_id))
    finally:
        await channel.close()

    assert received.body == json.dumps(PAYLOAD, ensure_ascii=False, sort_keys=True).encode()
    assert received.routing_key == "escalation.tactical.okf"
    assert received.exchange == ESCALATION_EXCHANGE
    assert received.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert received.content_type == "application/json"
    assert received.headers["x-sla-engine-notice-id"] == str(sent.notice_id)
    assert received_again.routing_key == "escalation.strategic.okf"
    assert not subscriber.connection.is_closed  # the channel does not own the connection


async def test_amqp_closed_connection_is_temporary() -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = AmqpChannel(connection, timeout_s=5)
    await channel.deliver(notice("amqp", "escalation.test.warmup"))
    await connection.close()

    with pytest.raises(DeliveryError) as caught:
        await channel.deliver(notice("amqp", "escalation.tactical.okf"))
    await channel.close()

    assert caught.value.permanent is False


async def test_amqp_unusable_routing_key_is_permanent() -> None:
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = AmqpChannel(connection)
        with pytest.raises(DeliveryError) as caught:
            await channel.deliver(notice("amqp", "x" * 256))
        await channel.close()
    assert caught.value.permanent is True


async def test_amqp_nack_is_temporary_and_the_next_notice_goes_out(
    subscriber: Subscriber,
) -> None:
    # A full queue that rejects publishes makes the broker nack; its key is outside
    # ``escalation.#``, so no one else's queue sees the message.
    full_key = f"sla-engine-test.full.{uuid.uuid4().hex}"
    setup = await subscriber.connection.channel()
    exchange = await setup.get_exchange(ESCALATION_EXCHANGE)
    full = await setup.declare_queue(
        exclusive=True,
        auto_delete=True,
        arguments={"x-max-length": 0, "x-overflow": "reject-publish"},
    )
    await full.bind(exchange, full_key)
    channel = AmqpChannel(subscriber.connection, timeout_s=5)
    try:
        with pytest.raises(DeliveryError) as caught:
            await channel.deliver(notice("amqp", full_key))
        after = notice("amqp", "escalation.tactical.okf")
        await channel.deliver(after)
        await subscriber.take(str(after.notice_id))
    finally:
        await channel.close()
        await setup.close()

    assert caught.value.permanent is False
    assert "did not confirm" in str(caught.value)
