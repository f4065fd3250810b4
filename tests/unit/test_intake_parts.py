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

    def __init__(self, body: dict[str, Any], acks: list[tuple[str, Any]]) -> None:
        self.body = json.dumps(body).encode()
        self.message_id = str(body["event_id"])
        self.headers: dict[str, Any] = {}
        self.routing_key = body["type"]
        self.content_type = "application/json"
        self._acks = acks

    async def ack(self, multiple: bool = False) -> None:
        self._acks.append(("ack", self.message_id))


class _GatedRecorder(Recorder):
    """Records on the in-memory store, holding its tickets locked from a transaction's
    start to its commit as PostgreSQL's ticket rows are; its first transaction waits at
    ``gate``, as one whose writes the database has not finished."""

    def __init__(self, gate: asyncio.Event, log: list[tuple[str, Any]]) -> None:
        super().__init__(METER, MemoryRecordingStore(Tables()))
        self.gate = gate
        self.log = log  # commits and acks, in the order they happened
        self.calls: list[list[str]] = []  # the tickets of each transaction, as it began
        self.done: list[list[str]] = []  # ... as it committed
        self.fail_once: list[str] | None = None  # a transaction of these tickets raises
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
            if tickets == self.fail_once:
                self.fail_once = None
                raise RuntimeError("a bug on this event")
            outcome = await super().record(events, now, bodies, meter)
        finally:
            async with self._unlocked:
                self._locked.difference_update(tickets)
                self._unlocked.notify_all()
        self.done.append(tickets)
        self.log.append(("commit", tickets))
        return outcome


def _two_batches(
    recorder_log: list[tuple[str, Any]], held: tuple[str, ...] = ("A",)
) -> tuple[IntakeConsumer, _GatedRecorder, asyncio.Event, list[str]]:
    """A consumer holding two batches: the first creates A and B (and D, to be as long as
    the second), the second creates C and answers the ``held`` tickets; the first
    batch's transaction waits for the gate."""
    gate = asyncio.Event()
    recorder = _GatedRecorder(gate, recorder_log)
    first = ["A", "B"] if len(held) == 1 else ["A", "B", "D"]
    consumer = IntakeConsumer(
        queue=None,  # type: ignore[arg-type]
        dead_letters=None,  # type: ignore[arg-type]
        recorder=recorder,
        options=IntakeOptions(batch_size=len(first)),
        now=lambda: MONDAY,
    )
    messages = [("ticket.created", ticket, 0, CREATED) for ticket in first]
    messages.append(("ticket.created", "C", 0, CREATED))  # a ticket the first does not hold
    messages += [("ticket.responded", ticket, 1, {}) for ticket in held]  # ones it holds
    ids = []
    for type_, ticket, seq, fields in messages:
        message = _Delivered(event(type_, ticket, seq, MONDAY, **fields), recorder_log)
        consumer._receive(message)  # type: ignore[arg-type]
        ids.append(message.message_id)
    return consumer, recorder, gate, ids


async def _until(condition: Any) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


async def test_a_batch_records_its_tickets_free_of_the_batch_before_without_waiting() -> None:
    log: list[tuple[str, Any]] = []
    consumer, recorder, gate, ids = _two_batches(log)
    stopping = asyncio.Event()
    stopping.set()  # the inbox is still worked off
    running = asyncio.create_task(consumer.run(stopping))
    try:
        # The second batch's ticket C is recorded while the first batch is still writing.
        await _until(lambda: recorder.done == [["C"]])
        assert recorder.calls == [["A", "B"], ["C"], ["A"]]  # A waits for the first batch
    finally:
        gate.set()
    await running
    assert recorder.done == [["C"], ["A", "B"], ["A"]]
    # Each batch acked once, in delivery order, and the second only once both its parts
    # committed.
    assert [entry for entry in log if entry[0] == "ack"] == [("ack", ids[1]), ("ack", ids[3])]
    assert log.index(("ack", ids[3])) > log.index(("commit", ["A"]))
    assert log.index(("ack", ids[1])) > log.index(("commit", ["A", "B"]))
    assert consumer.stats.recorded == 4
    assert consumer._held_tickets == {}  # nothing held once the batches are done


async def test_a_part_that_fails_is_tried_alone_and_the_committed_part_is_not_again() -> None:
    log: list[tuple[str, Any]] = []
    consumer, recorder, gate, ids = _two_batches(log, held=("A", "B"))
    recorder.fail_once = ["A", "B"]  # the second batch's second part, once
    stopping = asyncio.Event()
    stopping.set()
    running = asyncio.create_task(consumer.run(stopping))
    try:
        await _until(lambda: recorder.done == [["C"]])
    finally:
        gate.set()
    await running
    # The failed part is tried again one message at a time; the committed one is not.
    assert recorder.calls == [["A", "B", "D"], ["C"], ["A", "B"], ["A"], ["B"]]
    assert recorder.done == [["C"], ["A", "B", "D"], ["A"], ["B"]]
    assert consumer.stats.recorded == 6
    assert consumer.stats.duplicates == 0
    assert [entry for entry in log if entry[0] == "ack"] == [("ack", ids[2]), ("ack", ids[5])]


async def test_a_batch_is_taken_once_the_pipeline_has_room_with_all_that_came_meanwhile() -> None:
    log: list[tuple[str, Any]] = []
    consumer, recorder, gate, _ids = _two_batches(log)  # batches of two: A B, then C A
    stopping = asyncio.Event()
    running = asyncio.create_task(consumer.run(stopping))
    try:
        # Both places in the pipeline taken: the first batch writing, the second
        # recorded and waiting to ack after it.
        await _until(lambda: recorder.done == [["C"]])
        first = _Delivered(event("ticket.created", "E", 0, MONDAY, **CREATED), log)
        consumer._receive(first)  # type: ignore[arg-type]
        # Let every ready task run (no I/O here, so a few turns of the loop are all it
        # takes): the consumer must leave the message in its inbox, not take it alone.
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(consumer._inbox) == 1
        second = _Delivered(event("ticket.created", "F", 0, MONDAY, **CREATED), log)
        consumer._receive(second)  # type: ignore[arg-type]
    finally:
        gate.set()
    await _until(lambda: len(recorder.done) == 4)
    stopping.set()
    await running
    # The two that came while the pipeline was full went out as one batch.
    assert recorder.calls == [["A", "B"], ["C"], ["A"], ["E", "F"]]
    assert consumer.stats.batches == 3
