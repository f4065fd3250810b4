"""Escalation through the engine as a process, with a real SMTP server, HTTP receiver and
RabbitMQ: a warning reaches the provider side only, a breach both sides, each channel once;
notices survive SIGKILL with their ids; steps due while the engine was down fire after
restart, in order; two engines fire once.
"""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from engine.intake.publish import publish_events
from engine.notify.amqp import ESCALATION_EXCHANGE
from engine.notify.webhook import verify_signature
from tests.acceptance.conftest import short_sof_response, start
from tests.daemons import Daemon
from tests.helpers import EditYaml, every_notice_alone
from tests.services import AMQP_URL, free_port, poll
from tests.streams import CPH, event, lines

pytestmark = pytest.mark.acceptance
SECRET = "hemmelig-nøgle-til-webhooks"  # at least 16 bytes, as the settings demand
TARGET_S = 20  # SOF mobile phones, P1 response, in this test's configuration
STEPS = [0.25, 0.5, 0.75, 1.0, 1.5]  # the critical-care policy
# Each side told gets an e-mail, a webhook call and a bus message: the warnings go to the
# provider side only, but critical care tells the department of its 0.75 warning too.
NOTICES = {0.25: 3, 0.5: 3, 0.75: 6, 1.0: 6, 1.5: 6}
DEPARTMENT_MAIL = "vagt@sof.example.dk"
PROVIDER_MAIL = "vagt@koncernservice.example.dk"


def every_step_past() -> datetime:
    """A creation instant long enough ago for every step, the last too, to be due."""
    return datetime.now(UTC) - timedelta(seconds=TARGET_S * STEPS[-1] + 2)


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@dataclass
class Hooks:
    port: int
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        async def hook(request: web.Request) -> web.Response:
            self.received.append((dict(request.headers), await request.read()))
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


@dataclass
class Receivers:
    smtp_port: int
    mailbox: Mailbox
    hooks: Hooks
    bus: list[aio_pika.abc.AbstractIncomingMessage]
    controller: Controller | None = None

    async def start(self) -> None:
        """Start the SMTP server and the webhook receiver (the bus queue is always up)."""
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.smtp_port)
        self.controller.start()
        await self.hooks.start()


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    """An SMTP server, a webhook receiver (both started by the test) and a bus queue."""
    found = Receivers(free_port(), Mailbox(), Hooks(free_port()), [])
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(
        ESCALATION_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "escalation.#")

    async def take(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        found.bus.append(message)
        await message.ack()

    await queue.consume(take)
    yield found
    if found.controller is not None:
        found.controller.stop()
    if found.hooks.runner is not None:
        await found.hooks.runner.cleanup()
    await connection.close()


@pytest.fixture
def escalation_env(
    daemon_env: dict[str, str], receivers: Receivers, config_dir: Path, edit_yaml: EditYaml
) -> dict[str, str]:
    """SOF's people and the provider's all reached through the test's receivers (one
    contact a side); a 20-second P1 response."""
    # One receiver, an address a side: one address gets one notice of a step.
    hook = f"http://127.0.0.1:{receivers.hooks.port}/hook?side="
    contact = {"name": "Vagt SOF", "email": DEPARTMENT_MAIL, "amqp": True,
               "webhook_url": f"{hook}department"}  # fmt: skip
    provider = {"name": "Vagt Koncernservice", "email": PROVIDER_MAIL, "amqp": True,
                "webhook_url": f"{hook}provider"}  # fmt: skip

    def sof_contacts(data: Any) -> None:
        department = data["departments"][0]
        department["contacts"] = dict.fromkeys(("strategic", "tactical", "operational"), contact)

    def provider_contacts(data: Any) -> None:
        side = data["provider"]
        side["it_chief"] = side["helpdesk_lead"] = provider
        for function in side["functions"].values():
            function["lead"] = provider
        for team in side["customer_teams"]:
            team["contact"] = provider

    short_sof_response(edit_yaml, TARGET_S, 15)
    edit_yaml("departments/sof.yaml", sof_contacts)
    edit_yaml("provider.yaml", provider_contacts)
    edit_yaml("notices.yaml", every_notice_alone)  # these tests follow each step's notices
    return {
        **daemon_env,
        "SLA_ENGINE_CONFIG_DIR": str(config_dir),
        "SLA_ENGINE_SMTP_HOST": "127.0.0.1",
        "SLA_ENGINE_SMTP_PORT": str(receivers.smtp_port),
        "SLA_ENGINE_WEBHOOK_SECRET": SECRET,
        "SLA_ENGINE_NOTIFY_BACKOFF_MAX_S": "0.5",
        "SLA_ENGINE_NOTIFY_MAX_ATTEMPTS": "1000",  # receivers down for a while: keep trying
        "SLA_ENGINE_NOTIFY_LEASE_S": "5",
    }


def phone_ticket(ticket: str, at: datetime) -> dict[str, Any]:
    """A P1 ticket on SOF's carers' phones, created at ``at`` (the 24/7 calendar)."""
    return event("ticket.created", ticket, 0, at.astimezone(CPH), department="sof",
                 service="mobiltelefoni", priority="P1", subject="Telefonen virker ikke",
                 requester={"name": "Hjemmeplejer"})  # fmt: skip


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def outbox_settled(database_url: str, expected: int, timeout_s: float = 30) -> None:
    async def settled() -> bool:
        rows = await query(database_url, "SELECT status FROM outbox")
        return len(rows) >= expected and all(r["status"] == "sent" for r in rows)

    await poll(settled, timeout_s, what=f"{expected} notices sent")


async def steps_fired(database_url: str, n: int, timeout_s: float = 30) -> list[asyncpg.Record]:
    async def fired() -> bool:
        return len(await query(database_url, "SELECT 1 FROM escalation_steps")) >= n

    await poll(fired, timeout_s, what=f"{n} steps fired")
    return await query(database_url, "SELECT * FROM escalation_steps ORDER BY fired_at, due_at")


def delivered_once(receivers: Receivers, outbox: list[asyncpg.Record]) -> None:
    """Each notice reached its channel exactly once, under its own stable id."""
    by_channel = {c: sorted(str(r["notice_id"]) for r in outbox if r["channel"] == c)
                  for c in ("email", "webhook", "amqp")}  # fmt: skip
    mail_ids = sorted(m["Message-ID"].strip("<>").split("@")[0] for m in receivers.mailbox.messages)
    hook_ids = sorted(headers["Idempotency-Key"] for headers, _ in receivers.hooks.received)
    bus_ids = sorted(m.message_id or "" for m in receivers.bus)
    assert mail_ids == by_channel["email"]
    assert hook_ids == by_channel["webhook"]
    assert bus_ids == by_channel["amqp"]
    for headers, body in receivers.hooks.received:
        assert verify_signature(SECRET, body, headers.get("X-SLA-Engine-Signature"))


async def test_a_breach_reaches_each_channel_once(
    daemons: list[Daemon],
    escalation_env: dict[str, str],
    receivers: Receivers,
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    await receivers.start()
    await start(daemons, escalation_env, tmp_path)
    await publish_events(lines([phone_ticket("SOF-1", every_step_past())]), AMQP_URL)
    fired = await steps_fired(database_url, len(STEPS))
    assert [r["step"] for r in fired] == STEPS
    await outbox_settled(database_url, sum(NOTICES.values()))
    outbox = await query(database_url, "SELECT * FROM outbox")
    delivered_once(receivers, outbox)
    mails = {(json.loads(r["payload"])["step"], r["recipient"]): r["notice_id"]
             for r in outbox if r["channel"] == "email"}  # fmt: skip
    # The first warning to the provider side only, the breach to both.
    assert [who for step, who in sorted(mails) if step == 0.25] == [PROVIDER_MAIL]
    assert [who for step, who in sorted(mails) if step == 1.0] == [PROVIDER_MAIL, DEPARTMENT_MAIL]
    received = {m["Message-ID"]: m for m in receivers.mailbox.messages}
    warning = received[f"<{mails[(0.25, PROVIDER_MAIL)]}@sla-engine>"]
    assert "Handl nu: målet kan stadig nås." in warning.get_content()
    breach = received[f"<{mails[(1.0, DEPARTMENT_MAIL)]}@sla-engine>"].get_content()
    assert "SLA overskredet: 100 % af målet er brugt." in breach
    assert "SOF-1" in breach
    assert "strategisk niveau" in breach  # critical care: the breach goes to the strategic tier
    # Every mail of the clock threads: one subject, one root it replies to.
    assert {m["Subject"] for m in received.values()} == {"[SLA] Sag SOF-1: responstid"}
    [thread] = {json.loads(r["payload"])["thread"] for r in outbox}
    assert {m["References"] for m in received.values()} == {f"<{thread}@sla-engine>"}
    assert {m["In-Reply-To"] for m in received.values()} == {f"<{thread}@sla-engine>"}
    bus = {m.routing_key or "": m for m in receivers.bus if json.loads(m.body)["step"] == 1.0}
    assert sorted(bus) == ["escalation.strategic.sof", "escalation.strategic.sof.provider"]
    assert {json.loads(m.body)["audience"] for m in bus.values()} == {"department", "provider"}
    assert all(m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT for m in bus.values())
    warned = [m.routing_key for m in receivers.bus if json.loads(m.body)["step"] == 0.25]
    assert warned == ["escalation.operational.sof.provider"]


async def test_notices_committed_but_not_sent_go_out_after_sigkill_with_the_same_ids(
    daemons: list[Daemon],
    escalation_env: dict[str, str],
    receivers: Receivers,
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    engine = await start(daemons, escalation_env, tmp_path)  # SMTP and webhooks are down
    await publish_events(lines([phone_ticket("SOF-2", every_step_past())]), AMQP_URL)

    async def tried() -> bool:
        # Committed, tried and failed (nothing can have reached the receivers, which
        # are down); the bus's notices sent and recorded so: a kill now cuts off none.
        rows = await query(database_url, "SELECT channel, status, last_error FROM outbox")
        return len(rows) == sum(NOTICES.values()) and all(
            r["status"] == "sent" if r["channel"] == "amqp"
            else r["status"] == "pending" and r["last_error"] is not None
            for r in rows
        )  # fmt: skip

    await poll(tried, what="the notices to be tried and kept")
    before = {r["notice_id"] for r in await query(database_url, "SELECT notice_id FROM outbox")}
    engine.kill()  # SIGKILL
    await receivers.start()
    await start(daemons, escalation_env, tmp_path)
    await outbox_settled(database_url, len(before))
    outbox = await query(database_url, "SELECT * FROM outbox")
    assert {r["notice_id"] for r in outbox} == before
    delivered_once(receivers, outbox)


@pytest.mark.timeout(120)
async def test_steps_due_while_the_engine_was_down_fire_after_restart_in_order(
    daemons: list[Daemon],
    escalation_env: dict[str, str],
    receivers: Receivers,
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    await receivers.start()
    engine = await start(daemons, escalation_env, tmp_path)
    created_at = datetime.now(UTC)
    await publish_events(lines([phone_ticket("SOF-3", created_at)]), AMQP_URL)
    await steps_fired(database_url, 1, timeout_s=TARGET_S)
    # The first step's notices out: none cut off.
    await outbox_settled(database_url, NOTICES[STEPS[0]])
    engine.kill()
    breach_at = created_at + timedelta(seconds=TARGET_S)

    async def breach_passed() -> bool:
        return datetime.now(UTC) > breach_at + timedelta(seconds=1)

    await poll(breach_passed, timeout_s=TARGET_S + 5, what="the breach instant to pass")
    restarted = await start(daemons, escalation_env, tmp_path)
    fired = await steps_fired(database_url, 5, timeout_s=TARGET_S * 2)
    assert sorted(r["step"] for r in fired) == STEPS  # each once
    replay = [e["step"] for e in restarted.events() if e["event"] == "escalation.fired"]
    assert replay == [0.5, 0.75, 1.0, 1.5]  # in order
    replayed = [r for r in fired if r["step"] in (0.5, 0.75, 1.0)]
    assert all(r["fired_at"] > breach_at for r in replayed)
    last = fired[-1]  # 1.5 fell due after the restart: on time
    assert (last["fired_at"] - last["due_at"]).total_seconds() < 1.0
    await outbox_settled(database_url, sum(NOTICES.values()))
    delivered_once(receivers, await query(database_url, "SELECT * FROM outbox"))


async def test_two_engines_fire_each_step_once(
    daemons: list[Daemon],
    escalation_env: dict[str, str],
    receivers: Receivers,
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    await receivers.start()
    for _ in range(2):
        await start(daemons, escalation_env, tmp_path)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)  # every step is past
    tickets = [phone_ticket(f"SOF-{n}", long_ago + timedelta(seconds=n)) for n in range(40)]
    await publish_events(lines(tickets), AMQP_URL)
    fired = await steps_fired(database_url, 40 * len(STEPS))
    assert len(fired) == 40 * len(STEPS)
    await outbox_settled(database_url, 40 * sum(NOTICES.values()), timeout_s=60)
    delivered_once(receivers, await query(database_url, "SELECT * FROM outbox"))
