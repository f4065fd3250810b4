"""Budgets and digests end to end on the in-memory store, with a virtual clock: firing
holds what is over the budget and gathers a catch-up; the sender sends each digest once,
with its id, even after a crash between claim and send; superseded steps send nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine.config import load_config
from engine.config.notices import NoticesConfig
from engine.escalation.policy import CATCH_UP_LATE
from engine.notify.budget import digest_id
from engine.notify.compose import Composer
from engine.notify.digest import Digest, DigestItem, compose
from engine.notify.notice import ChannelName, Notice
from engine.notify.sender import OutboxSender, SenderOptions
from engine.scheduler.firing import fire_due, place
from engine.store.errors import is_transient
from engine.store.memory.firing import MemoryFiringStore
from engine.store.memory.outbox import MemoryOutboxStore
from engine.store.memory.recording import MemoryRecordingStore
from engine.store.memory.tables import ClockRow, Tables, TicketRow
from tests.contract.test_firing_store import fired
from tests.helpers import EXAMPLE_CONFIG
from tests.services import poll
from tests.unit.test_sender import Clock, Webhook, _true, sending

CONFIG = load_config(EXAMPLE_CONFIG)
COMPOSER = Composer(CONFIG)
T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)  # a Monday, 09:00 in Copenhagen


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def add_clock(tables: Tables, ticket_id: str, *, stopped_at: datetime | None = None) -> None:
    """ØKF's Opus Løn P1 response clock: 0.5 (operational) due at 7.5 min, 1.0 at 15."""
    tables.tickets[ticket_id] = TicketRow(ticket_id)
    due = [at(7.5), at(15)]
    tables.clocks[(ticket_id, "response")] = ClockRow(
        ticket_id=ticket_id, clock_key="response", metric="response", agreement_kind="sla",
        agreement_key="sla:okf:opus-loen", department="okf", service="opus-loen",
        function="helpdesk", priority="P1", calendar="office", target_s=900.0,
        state="stopped" if stopped_at else "running", running=stopped_at is None,
        elapsed_s=0.0, fraction=0.0, started_at=T0, stopped_at=stopped_at, deadline=at(15),
        next_due_at=due[0], measured_at=T0, steps=[0.5, 1.0], tiers=["operational", "tactical"],
        step_due_at=list(due),
    )  # fmt: skip


def email_of(tables: Tables) -> set[str]:
    return {n.recipient for n in tables.outbox.values() if n.channel == "email"}


async def test_over_the_budget_notices_are_held_in_one_digest_per_recipient() -> None:
    tables = Tables()
    for ticket in ("A", "B", "C"):
        add_clock(tables, ticket)
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(8), 100)
    assert len(firing.fired) == 3
    step = replace(fired("A", 0.5, at(7.5)), tier="operational")
    per_step = COMPOSER.notices(step)
    emails = [n for n in per_step if n.channel == "email"]
    machines = len(per_step) - len(emails)
    # E-mail: one alone, the two others held; machines get every notice.
    assert firing.notices == len(emails) + 3 * machines
    assert firing.held == 2 * len(emails)
    digests = {d.recipient: d for d in tables.digests.values() if d.channel == "email"}
    assert sorted(digests) == sorted(n.recipient for n in emails)  # one per address
    for n in emails:
        digest = digests[n.recipient]
        assert digest.digest_id == digest_id("email", n.recipient, at(8))
        assert (digest.send_at, len(digest.items)) == (at(38), 2)  # 30-minute windows


async def test_a_catch_up_goes_into_digests_and_never_alone() -> None:
    tables = Tables()
    add_clock(tables, "A", stopped_at=at(20))  # stopped; its steps fire after downtime
    add_clock(tables, "B", stopped_at=at(20))
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(120), 100)
    assert len(firing.fired) == 4  # recorded and counted as today
    assert firing.notices == 0
    assert tables.outbox == {}
    items = [item for d in tables.digests.values() for item in d.items]
    assert all(item["catch_up"] for item in items)
    expected = sum(len(COMPOSER.notices(s)) for s in firing.fired)
    assert len(items) == firing.held == expected
    # One digest per recipient and channel, whatever the number of steps.
    keys = [(d.channel, d.recipient) for d in tables.digests.values()]
    assert len(keys) == len(set(keys))


async def test_a_step_fired_long_after_it_fell_due_is_a_catch_up_too() -> None:
    # A running clock whose steps (due at 7.5 and 15 minutes) fire at 60: intake was
    # taking a backlog, or the events came late; news of the past, told in a digest.
    late = Tables()
    add_clock(late, "A")
    firing = await fire_due(MemoryFiringStore(late), COMPOSER, at(60), 100)
    assert len(firing.fired) == 2
    assert late.outbox == {}
    assert all(item["catch_up"] for d in late.digests.values() for item in d.items)
    # Within CATCH_UP_LATE of its due instant a step is told as it fires.
    on_time = Tables()
    add_clock(on_time, "A")
    firing = await fire_due(MemoryFiringStore(on_time), COMPOSER, at(7.5) + CATCH_UP_LATE, 100)
    assert [step.step for step in firing.fired] == [0.5, 1.0]  # 15 and 7.5 minutes late
    assert on_time.outbox
    assert not any(item["catch_up"] for d in on_time.digests.values() for item in d.items)


async def test_a_catch_ups_notices_are_addressed_as_written_ones_but_not_written() -> None:
    tables = Tables()
    add_clock(tables, "A", stopped_at=at(20))
    firing = await fire_due(MemoryFiringStore(tables), COMPOSER, at(120), 100)
    assert firing.fired
    for step in firing.fired:
        written, addressed = COMPOSER.notices(step), COMPOSER.notices(step, written=False)

        def address(n: Notice) -> tuple[object, ...]:
            return (n.notice_id, n.channel, n.recipient, n.recipient_name, n.language)

        assert [address(n) for n in addressed] == [address(n) for n in written]
        assert all(n.subject == n.body == "" and n.payload == {} for n in addressed)
        assert all(n.subject and n.body for n in written)
    held_ids = {item["notice_id"] for d in tables.digests.values() for item in d.items}
    assert held_ids == {str(n.notice_id) for step in firing.fired for n in COMPOSER.notices(step)}


def sender_on(tables: Tables, channel: Webhook, clock: Clock) -> OutboxSender:
    channels: dict[ChannelName, Webhook] = {"email": channel, "webhook": channel}
    return OutboxSender(
        MemoryOutboxStore(tables), channels, SenderOptions(idle_s=5), transient=is_transient,
        now=clock,
    )  # fmt: skip


async def test_a_digest_claimed_and_not_sent_goes_out_once_with_its_id_after_the_lease() -> None:
    tables = Tables()
    for ticket in ("A", "B"):
        add_clock(tables, ticket)
    await fire_due(MemoryFiringStore(tables), COMPOSER, at(8), 100)
    rows = {d.digest_id: d for d in tables.digests.values() if d.channel == "email"}
    assert rows
    # A sender claims them at the window's end and dies before sending them.
    taken = await MemoryOutboxStore(tables).claim_digests(at(38), at(39), 10)
    assert {t.digest.digest_id for t in taken} == set(rows)
    clock, channel = Clock(), Webhook()
    clock.now = at(38.5)
    sender = sender_on(tables, channel, clock)
    async with sending(sender):
        # Notices alone go out at once; the leased digests wait for their lease to end.
        await poll(lambda: _true(len(channel.delivered) >= 1), timeout_s=10, what="notices")
        assert all(row.status == "pending" for row in rows.values())
        clock.now = at(39)
        sender.wake()
        await poll(
            lambda: _true(all(row.status == "sent" for row in rows.values())),
            timeout_s=10,
            what="the digests sent",
        )
    for ident, row in rows.items():
        [digest] = [n for n in channel.delivered if n.notice_id == ident]  # once, its id
        assert row.attempts == 2
        assert "B" in digest.body
        assert digest.payload["count"] == 1


async def test_superseded_before_it_left_sends_nothing() -> None:
    tables = Tables()
    for ticket in ("A", "B"):
        add_clock(tables, ticket)
    await fire_due(MemoryFiringStore(tables), COMPOSER, at(8), 100)
    async with MemoryRecordingStore(tables).transaction() as recording:
        await recording.supersede_steps([("A", "response", 0.5), ("B", "response", 0.5)], at(9))
    clock, channel = Clock(), Webhook()
    clock.now = at(40)
    sender = sender_on(tables, channel, clock)
    async with sending(sender):
        await poll(
            lambda: _true(all(d.status != "pending" for d in tables.digests.values())
                          and all(n.status != "pending" for n in tables.outbox.values())),
            timeout_s=10, what="everything settled",
        )  # fmt: skip
    assert channel.delivered == []
    assert {n.status for n in tables.outbox.values()} == {"superseded"}
    assert {d.status for d in tables.digests.values()} == {"superseded"}


def test_a_digest_text_names_the_count_and_window_in_the_contacts_language() -> None:
    steps = [fired("A", 0.5, at(7.5)), replace(fired("B", 1.0, at(15)), tier="tactical")]
    ident = digest_id("email", "x", T0)
    items = tuple(
        DigestItem.of(s, zone="Europe/Copenhagen", catch_up=i == 1, notice_id=ident)
        for i, s in enumerate(steps)
    )
    digest = Digest(digest_id("email", "a@x.dk", T0), "email", "a@x.dk", "Åse", "da", T0,
                    at(15), items)  # fmt: skip
    danish = compose(digest)
    assert danish.subject == "[SLA samlet] 2 eskaleringer 2026-11-23 09:00 CET-09:15 CET"
    assert "Sag A" in danish.body
    assert "Sag B" in danish.body
    assert "[indhentet, uret er stoppet]" in danish.body
    english = compose(replace(digest, language="en", items=items[:1]))
    assert english.subject == "[SLA digest] 1 escalation 2026-11-23 09:00 CET-09:15 CET"
    assert english.payload["items"][0]["ticket_id"] == "A"
    assert english.notice_id == digest.digest_id


@pytest.mark.parametrize("bypass", [True, False])
def test_a_strategic_breach_goes_alone_whatever_the_budget_when_set_to(bypass: bool) -> None:
    config = CONFIG.model_copy(
        update={"notices": NoticesConfig(strategic_breach_bypasses_budget=bypass)}
    )
    steps = [replace(fired(t, 1.0, at(15)), tier="strategic") for t in ("A", "B")]
    offered = [(s, n) for s in steps for n in Composer(config).notices(s) if n.channel == "email"]
    alone, held, windows = place(Composer(config), offered, set(), {}, at(15))
    assert offered  # ØKF's strategic tier has an e-mail address
    per_recipient = len(offered) // 2
    assert len(alone) == (2 if bypass else 1) * per_recipient
    assert len(held) == (0 if bypass else 1) * per_recipient
    assert all(w.sent == (2 if bypass else 1) for w in windows.values())
