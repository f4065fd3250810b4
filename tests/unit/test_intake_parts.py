"""A batch records the events of tickets no other batch in flight holds without waiting
for that batch's commit, and the rest after it; acks stay in delivery order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from engine.events import TicketEvent
from engine.intake.consumer import IntakeConsumer, IntakeOptions
from engine.intake.recorder import BatchOutcome, Recorder
from engine.sla_clock.meter import ClockMeter
from engine.store.memory.recording import MemoryRecordingStore
from engine.store.memory.tables import Tables
from tests.streams import event
from tests.unit.test_admission import METER, MONDAY

CREATED = {"department": "okf", "service": "opus-loen", "priority": "P1", "subject": "Løn"}


class _Delivered:
    """A message as intake holds it; its acks are written down."""

    def __init__(self, body: dict[str, Any], acks: list[tuple[str, bool]]) -> None:
        self.body = json.dumps(body).encode()
        self.message_id = str(body["event_id"])
        self.headers: dict[str, Any] = {}
        self.routing_key = body["type"]
        self.content_type = "application/json"
        self._acks = acks

    async def ack(self, multiple: bool = False) -> None:
        self._acks.append((self.message_id, multiple))


class _GatedRecorder(Recorder):
    """Records on the in-memory store, holding its tickets locked from a transaction's
    start to its commit as PostgreSQL's ticket rows are; its first transaction waits at
    ``gate``, as one whose writes the database has not finished."""

    def __init__(self, gate: asyncio.Event) -> None:
        super().__init__(METER, MemoryRecordingStore(Tables()))
        self.gate = gate
        self.calls: list[list[str]] = []  # the tickets of each transaction, as it began
        self.done: list[list[str]] = []  # ... as it committed
        self._locked: set[str] = set()
        self._unlocked = asyncio.Condition()

    async def record(
        self,
        events: Sequence[TicketEvent],
        now: datetime,
        bodies: Sequence[bytes] | None = None,
        meter: ClockMeter | None = None,
    ) -> BatchOutcome:
        tickets = sorted({e.ticket_id for e in events})
        self.calls.append(tickets)
        first = len(self.calls) == 1
        async with self._unlocked:
            await self._unlocked.wait_for(lambda: not self._locked.intersection(tickets))
            self._locked.update(tickets)
        try:
            if first:
                await self.gate.wait()
            outcome = await super().record(events, now, bodies, meter)
        finally:
            async with self._unlocked:
                self._locked.difference_update(tickets)
                self._unlocked.notify_all()
        self.done.append(tickets)
        return outcome


async def test_a_batch_records_its_tickets_free_of_the_batch_before_without_waiting() -> None:
    gate = asyncio.Event()
    recorder = _GatedRecorder(gate)
    consumer = IntakeConsumer(
        queue=None,  # type: ignore[arg-type]
        dead_letters=None,  # type: ignore[arg-type]
        recorder=recorder,
        options=IntakeOptions(batch_size=2),
        now=lambda: MONDAY,
    )
    acks: list[tuple[str, bool]] = []

    def deliver(type_: str, ticket: str, seq: int, **fields: Any) -> str:
        message = _Delivered(event(type_, ticket, seq, MONDAY, **fields), acks)
        consumer._receive(message)  # type: ignore[arg-type]
        return message.message_id

    deliver("ticket.created", "A", 0, **CREATED)
    first_last = deliver("ticket.created", "B", 0, **CREATED)
    deliver("ticket.created", "C", 0, **CREATED)  # a ticket the first batch does not hold
    second_last = deliver("ticket.responded", "A", 1)  # one it holds
    stopping = asyncio.Event()
    stopping.set()  # the inbox is still worked off
    running = asyncio.create_task(consumer.run(stopping))

    async def until(condition: Any) -> None:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0.001)

    # The second batch's ticket C is recorded while the first batch is still writing.
    await until(lambda: recorder.done == [["C"]])
    assert recorder.calls == [["A", "B"], ["C"], ["A"]]  # A waits for the first batch
    assert acks == []  # nothing acknowledged before the batch before it is in
    gate.set()
    await running
    assert recorder.calls == [["A", "B"], ["C"], ["A"]]
    assert recorder.done == [["C"], ["A", "B"], ["A"]]
    assert acks == [(first_last, True), (second_last, True)]
    assert consumer.stats.recorded == 4
    assert consumer._held_tickets == {}  # nothing held once the batches are done
