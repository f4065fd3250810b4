"""What is refused of a valid event because of the engine's clock or its ticket, and the
intake's dead-lettering of a message whose own headers the broker cannot take back."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import aio_pika
from structlog.testing import capture_logs

from engine.config import load_config
from engine.events import TicketEvent, parse_event
from engine.events.admission import Horizon, Refusal, TicketAdmission
from engine.intake import topology
from engine.intake.consumer import IntakeConsumer, IntakeOptions
from engine.intake.recorder import Recorder
from engine.simulate.core import simulate
from engine.sla_clock.meter import ClockMeter
from engine.store.memory.recording import MemoryRecordingStore
from engine.store.memory.tables import Tables
from tests.helpers import EXAMPLE_CONFIG
from tests.streams import CPH, event

METER = ClockMeter(load_config(EXAMPLE_CONFIG))
MONDAY = datetime(2030, 11, 25, 9, tzinfo=CPH)


def ev(type_: str, ticket: str, seq: int, minutes: float, **fields: Any) -> TicketEvent:
    at = MONDAY + timedelta(minutes=minutes)
    return parse_event(json.dumps(event(type_, ticket, seq, at, **fields)))


def created(ticket: str, seq: int = 0, minutes: float = 0) -> TicketEvent:
    return ev("ticket.created", ticket, seq, minutes, department="okf", service="opus-loen",
              priority="P1", subject="Løn")  # fmt: skip


def comment(ticket: str, seq: int, minutes: float = 1) -> TicketEvent:
    return ev("ticket.commented", ticket, seq, minutes, visibility="public", body="x")


def test_an_event_within_the_window_ahead_is_admitted_and_one_beyond_is_refused() -> None:
    event_ = comment("T-1", 1)
    now = event_.occurred_at - timedelta(seconds=100)
    assert Horizon.at(now, 100).refusal(event_) is None
    refusal = Horizon.at(now, 99.5).refusal(event_)
    assert refusal is not None
    assert refusal.kind == "out_of_range"
    assert "more than 99.5 s ahead of the engine's clock" in refusal.reason


def test_a_ticket_is_created_once_and_its_creation_offered_again_is_no_refusal() -> None:
    ticket = TicketAdmission(limit=10)
    first, second = created("T-1"), created("T-1", seq=9, minutes=-600_000)
    assert ticket.refusal(first) is None
    ticket.admit(first)
    refusal = ticket.refusal(second)
    assert refusal is not None
    assert refusal.kind == "second_creation"
    assert str(first.event_id) in refusal.reason
    assert ticket.refusal(first) is None  # the same event: a duplicate, decided elsewhere


def test_a_ticket_takes_its_limit_of_events_and_not_one_more() -> None:
    ticket = TicketAdmission(limit=3)
    for seq in range(3):
        assert ticket.refusal(comment("T-1", seq)) is None
        ticket.admit(comment("T-1", seq))
    refusal = ticket.refusal(comment("T-1", 3))
    assert refusal == Refusal(
        "ticket_limit", "ticket 'T-1' holds 3 events, the most one ticket may hold (3)"
    )


def test_simulate_refuses_a_second_creation_as_the_daemon_does() -> None:
    stray = created("T-1", seq=9, minutes=-525_600)  # a year earlier: it would breach all
    result = simulate(METER, [created("T-1"), stray, ev("ticket.responded", "T-1", 1, 5)])
    [(event_id, reason)] = result.refused
    assert event_id == str(stray.event_id)
    assert "was created by event" in reason
    assert result.events == 2
    assert result.breaches == 0  # the P1 response in 5 minutes met its 15


def test_simulate_refuses_events_past_the_limit_in_arrival_order() -> None:
    events = [created("T-1"), *(comment("T-1", seq) for seq in range(1, 6))]
    result = simulate(METER, events, max_events_per_ticket=4)
    assert [event_id for event_id, _ in result.refused] == [str(e.event_id) for e in events[4:]]
    assert result.events == 4


class _PickyExchange:
    """Takes back no header but the engine's own, as a broker may refuse what it sent."""

    def __init__(self) -> None:
        self.published: list[aio_pika.Message] = []

    async def publish(self, message: aio_pika.Message, routing_key: str) -> None:
        if set(message.headers) - {topology.REASON_HEADER, "x-original-routing-key"}:
            raise ValueError("cannot encode header 'x-odd'")
        self.published.append(message)


class _Delivered:
    def __init__(self) -> None:
        self.body = b"not json"
        self.headers = {"x-odd": object()}
        self.routing_key = "ticket.created"
        self.content_type = "application/json"
        self.message_id = "m-1"


def _consumer(exchange: object) -> IntakeConsumer:
    return IntakeConsumer(
        queue=None,  # type: ignore[arg-type]
        dead_letters=exchange,  # type: ignore[arg-type]
        # Never asked to record (the messages are refused); a batch reads its meter.
        recorder=Recorder(METER, MemoryRecordingStore(Tables())),
        options=IntakeOptions(batch_size=1, retry_max_s=0.2),
    )


async def test_a_dead_letter_whose_headers_cannot_be_sent_goes_with_the_reason_only() -> None:
    exchange = _PickyExchange()
    consumer = _consumer(exchange)
    with capture_logs() as logs:
        await consumer._dead_letter(_Delivered(), Refusal("malformed", "not JSON"))  # type: ignore[arg-type]
    [sent] = exchange.published
    assert sent.headers == {
        topology.REASON_HEADER: "not JSON",
        "x-original-routing-key": "ticket.created",
    }
    assert sent.body == b"not json"
    assert [entry["event"] for entry in logs] == [
        "intake.dead_letter_stripped",
        "intake.dead_lettered",
    ]
    assert consumer.stats.dead_lettered == 1


class _FlakyExchange:
    """A broker that fails ``failures`` publishes, then takes them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.published: list[aio_pika.Message] = []

    async def publish(self, message: aio_pika.Message, routing_key: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("broker gone")
        self.published.append(message)


async def test_a_dead_letter_the_broker_fails_to_take_is_retried_not_requeued() -> None:
    exchange = _FlakyExchange(failures=4)  # two attempts of two publishes each
    consumer = _consumer(exchange)
    with capture_logs() as logs:
        settled = await consumer._settle([_Delivered()], asyncio.Event())  # type: ignore[list-item]
    assert settled
    [sent] = exchange.published
    assert str(sent.headers[topology.REASON_HEADER]).startswith("invalid event")
    assert [e["event"] for e in logs].count("intake.dead_letter_failed") == 2
    assert consumer.stats.dead_lettered == 1


async def test_a_dead_letter_still_failing_at_shutdown_leaves_the_batch_unsettled() -> None:
    stopping = asyncio.Event()
    stopping.set()
    consumer = _consumer(_FlakyExchange(failures=2))
    assert not await consumer._settle([_Delivered()], stopping)  # type: ignore[list-item]
    assert consumer.stats.dead_lettered == 0
