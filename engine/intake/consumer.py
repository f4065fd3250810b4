"""Consume ticket events from RabbitMQ into PostgreSQL, acknowledging only committed work.

Messages are taken in batches: a batch's valid events are recorded in at most two
transactions (see ``IntakeConsumer.run``) and the whole batch is acknowledged with one
multiple-ack after both commit. A message that can never be recorded (not JSON, not the
contract, an unknown department) is copied to the dead-letter exchange with its reason
before that ack. While PostgreSQL is away the batch stays unacknowledged and is retried
with backoff; the bounded prefetch then holds the rest of the queue at the broker.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractExchange, AbstractQueue, AbstractRobustChannel
from prometheus_client import Histogram
from pydantic import ValidationError

from engine.events import TicketEvent, parse_event
from engine.events.admission import MAX_AHEAD_S, Horizon, Refusal
from engine.intake.backlog import read_up_to
from engine.intake.delivery import Delivery, Subscription
from engine.intake.recorder import BatchOutcome, Recorder
from engine.intake.topology import REASON_HEADER
from engine.loops import until_done
from engine.metrics import (
    INTAKE_BATCH_SECONDS,
    INTAKE_DEAD_LETTERS,
    INTAKE_DUPLICATES,
    INTAKE_EVENTS,
    INTAKE_HELD,
    INTAKE_LAST_PROCESSED,
    INTAKE_RETRIES,
    SATISFACTION,
)
from engine.settings import Settings
from engine.sla_clock.meter import ClockMeter
from engine.store.errors import is_transient

log = structlog.get_logger(__name__)

# Twice the largest valid event (a 64 KiB body plus the envelope); anything bigger is
# refused before it is parsed.
MAX_MESSAGE_BYTES = 160 * 1024

# Duplicate event ids named in one log line; the count is always whole.
_LOGGED_IDS = 20


# Messages recorded in one transaction, and what it did.
_Part = tuple[list[tuple[Delivery, TicketEvent]], BatchOutcome]


@dataclass
class IntakeStats:
    """Counts since start, for logs, tests and (later) metrics."""

    recorded: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0


def _refusal(error: ValidationError) -> Refusal:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "message"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    kind = "malformed" if first["type"] == "json_invalid" else "invalid"
    return Refusal(kind, f"invalid event: {where}: {first['msg']}{more}")


def _ids(body: bytes) -> dict[str, str]:
    """The event and ticket ids of a refused message, where it has them, for its log line."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return {}
    if not isinstance(document, dict):
        return {}
    return {
        key: str(document[key])[:100]
        for key in ("event_id", "ticket_id")
        if isinstance(document.get(key), str | int)
    }


@dataclass(frozen=True)
class IntakeOptions:
    """How intake paces itself; the defaults are the settings' defaults."""

    batch_size: int = 3000
    retry_max_s: float = 10.0
    max_ahead_s: float = MAX_AHEAD_S
    pipeline: int = 2  # batches in flight at once; not a setting

    @classmethod
    def from_settings(cls, settings: Settings) -> IntakeOptions:
        """The options the engine's settings give."""
        return cls(
            batch_size=settings.batch_size,
            retry_max_s=settings.db_retry_max_s,
            max_ahead_s=settings.max_ahead_s,
        )


class IntakeConsumer:
    """Takes messages off the intake queue and records them in batches."""

    def __init__(
        self,
        queue: AbstractQueue,
        dead_letters: AbstractExchange,
        recorder: Recorder,
        options: IntakeOptions,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        business_time: Histogram | None = None,
    ) -> None:
        self._queue = queue
        self._dead_letters = dead_letters
        self._recorder = recorder
        self._batch_size = options.batch_size
        self._pipeline = options.pipeline
        self._retry_max_s = options.retry_max_s
        self._now = now
        self._business_time = business_time
        self._max_ahead_s = options.max_ahead_s
        # A deque and an event rather than an asyncio.Queue: put and get cost a loop
        # lookup and a waiter check per message, on the path of every event. Unbounded,
        # since the channel's prefetch bounds what the broker sends.
        self._inbox: deque[Delivery] = deque()
        self._arrived = asyncio.Event()
        self._subscription: Subscription | None = None
        self._in_batches = 0  # messages taken from the inbox and not yet settled
        # The tickets of each batch in flight, by the task recording it: a batch records
        # first, apart, the events of tickets that no other batch in flight holds.
        self._held_tickets: dict[asyncio.Task[Any], set[str]] = {}
        self.received = 0  # messages received from the broker since start
        # The instant the queue has been read up to: see ``engine.intake.backlog``.
        self.read_up_to: datetime | None = None
        self.stats = IntakeStats()

    @property
    def consuming(self) -> bool:
        """Whether messages are being taken from the queue."""
        return self._subscription is not None and self._subscription.consuming

    @property
    def held(self) -> int:
        """Messages received from the broker and not yet settled."""
        return len(self._inbox) + self._in_batches

    async def start(self) -> None:
        """Start receiving messages (at most the channel's prefetch at a time)."""
        INTAKE_LAST_PROCESSED.set_to_current_time()  # "stalled" counts from the start
        INTAKE_HELD.set_function(lambda: self.held)
        channel = self._queue.channel
        assert isinstance(channel, AbstractRobustChannel), "intake consumes on a robust channel"
        self._subscription = Subscription(channel, self._queue.name, self._receive)
        await self._subscription.start()

    def _receive(self, message: Delivery) -> None:
        self.received += 1
        self._inbox.append(message)
        self._arrived.set()

    async def stop_receiving(self) -> None:
        """Stop taking new messages; those already received are still processed or released."""
        if self._subscription is not None:
            subscription, self._subscription = self._subscription, None
            await subscription.stop()

    async def run(self, stopping: asyncio.Event) -> None:
        """Process batches until ``stopping`` is set and the received messages are done.

        Up to ``pipeline`` batches are in flight at once, so that one batch is read,
        checked and measured while the database writes another's. A transaction that
        shares a ticket with another in flight waits for its commit at its first
        statement (the ticket rows are the locks), and in a backlog nearly every pair of
        batches shares some: so a batch records the events of tickets no other batch in
        flight holds first, in a transaction of their own, and the rest after.
        Acks still go out in delivery order: a batch acks only after the batch before it.
        A batch is taken once a place is free, with what came meanwhile: draining
        bench-intake's 200,000 events, 42 and 43 of 106 and 112 batches were full,
        against 20 of 176 when each was taken as soon as the one before it was.
        """
        in_flight: deque[asyncio.Task[bool]] = deque()
        try:
            while not (stopping.is_set() and not self._inbox):
                # A free place in the pipeline first, and only then the batch: in a
                # backlog the inbox fills while the batches in flight are recorded, so
                # the batch taken is a full one rather than what had come by the time
                # the last was taken.
                while len(in_flight) >= self._pipeline:
                    await in_flight.popleft()
                batch = await self._next_batch(stopping)
                if batch is None:
                    continue
                before = in_flight[-1] if in_flight else None
                in_flight.append(asyncio.create_task(self._process(batch, stopping, before)))
            while in_flight:
                await in_flight.popleft()
        finally:  # cancelled when the grace period runs out: take the batches along
            for task in in_flight:
                task.cancel()

    async def _next_batch(self, stopping: asyncio.Event) -> list[Delivery] | None:
        while not self._inbox:
            if stopping.is_set():
                return None
            self._arrived.clear()
            arrived = asyncio.ensure_future(self._arrived.wait())
            stopper = asyncio.ensure_future(stopping.wait())
            await asyncio.wait({arrived, stopper}, return_when=asyncio.FIRST_COMPLETED)
            arrived.cancel()
            stopper.cancel()
        inbox = self._inbox
        batch = [inbox.popleft() for _ in range(min(len(inbox), self._batch_size))]
        self._in_batches += len(batch)
        return batch

    async def _process(
        self,
        batch: list[Delivery],
        stopping: asyncio.Event,
        before: asyncio.Task[bool] | None,
    ) -> bool:
        """Record a batch and ack it; True when no message up to its last is left unsettled.

        A message is settled once acked, nacked, or lost with the channel it came on (the
        broker redelivers those). Only at shutdown are messages left unsettled on purpose.
        """
        try:
            return await self._process_in_order(batch, stopping, before)
        finally:
            self._in_batches -= len(batch)
            task = asyncio.current_task()
            if task is not None:
                self._held_tickets.pop(task, None)

    async def _process_in_order(
        self,
        batch: list[Delivery],
        stopping: asyncio.Event,
        before: asyncio.Task[bool] | None,
    ) -> bool:
        started = time.perf_counter()
        occurred: list[datetime] = []
        settled = await self._settle(batch, stopping, occurred)
        if settled:
            INTAKE_BATCH_SECONDS.observe(time.perf_counter() - started)
            INTAKE_LAST_PROCESSED.set_to_current_time()
        # Whatever happened to this batch, the one before must be done before an ack, and
        # a multiple-ack is right only when nothing before this batch is left unsettled.
        in_order = await before if before is not None else True
        if settled and in_order:
            # Only once the batches before it are in too: read up to here means all of it.
            self.read_up_to = read_up_to(self.read_up_to, occurred)
        if not settled:
            if stopping.is_set():
                return False  # stopping while the database is away: redelivered later
            for message in batch:  # back to the queue; its delivery limit counts them
                await self._settle_one(message, requeue=True)
            return in_order
        self.stats.batches += 1
        if in_order:
            try:
                await batch[-1].ack(multiple=True)
                return True
            except Exception as exc:  # noqa: BLE001 - its channel is gone: redelivered
                log.warning("intake.ack_failed", error=repr(exc), messages=len(batch))
        for message in batch:
            await self._settle_one(message)
        return in_order

    async def _settle_one(self, message: Delivery, requeue: bool = False) -> None:
        """Ack (or nack) one message; one whose channel is gone is redelivered anyway."""
        try:
            if requeue:
                await message.nack(requeue=True)
            else:
                await message.ack()
        except Exception as exc:  # noqa: BLE001 - the broker redelivers; recording is idempotent
            log.warning("intake.ack_failed", error=repr(exc), messages=1)

    async def _settle(
        self,
        batch: list[Delivery],
        stopping: asyncio.Event,
        occurred: list[datetime] | None = None,
    ) -> bool:
        """Dead-letter what cannot be recorded and record the rest; False if not done.

        The instants the recorded events occurred at are added to ``occurred``, if given.
        """
        valid: list[tuple[Delivery, TicketEvent]] = []
        refused: list[tuple[Delivery, Refusal]] = []
        horizon = Horizon.at(self._now(), self._max_ahead_s)
        # Read once: the batch is checked and measured under one configuration, even if
        # a reload puts another in force meanwhile.
        meter = self._recorder.meter
        for message in batch:
            event = self._read(message, horizon, meter)
            if isinstance(event, Refusal):
                refused.append((message, event))
            else:
                valid.append((message, event))
        if not await self._refuse(refused, stopping):
            return False
        if not valid:
            return True
        committed: list[_Part] = []
        try:
            done = await self._record_in_parts(valid, stopping, meter, committed)
        except Exception as exc:
            # Not the database but this code failing on some event: find the message
            # that does it and dead-letter it, rather than stall the queue on it. A part
            # already committed stays so, and only the rest is tried one by one.
            recorded = {id(message) for part, _ in committed for message, _ in part}
            rest = [pair for pair in valid if id(pair[0]) not in recorded]
            one = {"event_id": str(rest[0][1].event_id), "ticket_id": rest[0][1].ticket_id}
            log.exception(
                "intake.record_failed", events=len(rest), **(one if len(rest) == 1 else {})
            )
            if not await self._committed(committed, stopping, occurred):
                return False
            if len(rest) > 1:
                return all(
                    [await self._settle([message], stopping, occurred) for message, _ in rest]
                )
            failed = Refusal("internal_error", f"internal error: {exc!r}")
            return await self._refuse([(rest[0][0], failed)], stopping)
        # Counted whatever becomes of a part not committed: a redelivery finds it in.
        return await self._committed(committed, stopping, occurred) and done

    async def _committed(
        self, committed: list[_Part], stopping: asyncio.Event, occurred: list[datetime] | None
    ) -> bool:
        """Count committed parts and dead-letter what the store refused of them; False if
        stopped before all were. Were the engine to stop before they are dead-lettered,
        their redelivery finds the others recorded and these refused again."""
        refused: list[tuple[Delivery, Refusal]] = []
        for part, outcome in committed:
            self._count(outcome)
            if occurred is not None:
                occurred.extend(event.occurred_at for _, event in part)
            refused += [(m, outcome.refused[e.event_id]) for m, e in part
                        if e.event_id in outcome.refused]  # fmt: skip
        return await self._refuse(refused, stopping)

    async def _record_in_parts(
        self,
        valid: list[tuple[Delivery, TicketEvent]],
        stopping: asyncio.Event,
        meter: ClockMeter,
        committed: list[_Part],
    ) -> bool:
        """Record the events of tickets that no other batch in flight holds, then the
        rest, each part in a transaction of its own, adding each to ``committed`` as it
        commits; False if stopped before both were.

        The first part does not wait for the other batches' commits, so it is measured
        while the database writes theirs. Were the engine to stop between the two, the
        batch is not acknowledged: its redelivery finds the first part recorded, and
        records the rest.
        """
        # Only waiting is saved: whatever the parts, the ticket rows' locks keep each
        # ticket's transactions in order, here and across engines.
        task = asyncio.current_task()
        held: set[str] = set()
        for other, tickets in self._held_tickets.items():
            if other is not task:
                held |= tickets
        if task is not None:
            self._held_tickets[task] = {event.ticket_id for _, event in valid}
        free = [pair for pair in valid if pair[1].ticket_id not in held]
        parts = [free, [pair for pair in valid if pair[1].ticket_id in held]]
        for part in parts if free and len(free) < len(valid) else [valid]:
            outcome = await self._record(part, stopping, meter)
            if outcome is None:
                return False
            committed.append((part, outcome))
        return True

    async def _refuse(
        self, refused: list[tuple[Delivery, Refusal]], stopping: asyncio.Event
    ) -> bool:
        """Dead-letter each message with its reason; False if stopped before all were.

        A failed publish is the broker's fault (a message the broker will not take back
        as it is goes with the engine's headers only), so it is retried with backoff
        rather than sending the batch back to the queue to be read again at once.
        """
        for message, refusal in refused:

            async def attempt(message: Delivery = message, refusal: Refusal = refusal) -> bool:
                await self._dead_letter(message, refusal)
                return True

            done = await until_done(
                attempt,
                transient=lambda _error: True,
                stopping=stopping,
                max_delay_s=self._retry_max_s,
                event="intake.dead_letter_failed",
                first_delay_s=0.1,
            )
            if done is None:
                return False
        return True

    def _count(self, outcome: BatchOutcome) -> None:
        """The committed batch's effects, into the stats and the metrics."""
        self.stats.recorded += outcome.recorded
        self.stats.duplicates += outcome.duplicates
        for (event_type, channel), count in outcome.kinds.items():
            INTAKE_EVENTS.labels(event_type, channel).inc(count)
        if outcome.duplicates:
            INTAKE_DUPLICATES.inc(outcome.duplicates)
            # The ids let the helpdesk trace a frontend that sends an event twice.
            log.info(
                "intake.duplicates",
                count=outcome.duplicates,
                event_ids=outcome.duplicate_ids[:_LOGGED_IDS],
            )
        for rating in outcome.rated:
            SATISFACTION.labels(rating.department, rating.service).observe(rating.score)
        if self._business_time is not None:
            # One label lookup per kind of clock, not per clock: a lookup takes a lock.
            elapsed: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
            for clock in outcome.stopped:
                elapsed[(clock.metric, clock.agreement_kind)].append(clock.elapsed_s)
            for labels, seconds in elapsed.items():
                observe = self._business_time.labels(*labels).observe
                for value in seconds:
                    observe(value)

    def _read(
        self, message: Delivery, horizon: Horizon, meter: ClockMeter
    ) -> TicketEvent | Refusal:
        """The message's event, or why it is refused; never raises, so that one message
        can only ever cost itself."""
        try:
            return self._check(message, horizon, meter)
        except Exception as exc:
            log.exception("intake.read_failed", message_id=message.message_id)
            return Refusal("internal_error", f"internal error reading the message: {exc!r}")

    def _check(
        self, message: Delivery, horizon: Horizon, meter: ClockMeter
    ) -> TicketEvent | Refusal:
        if len(message.body) > MAX_MESSAGE_BYTES:
            return Refusal(
                "too_large", f"message of {len(message.body)} bytes exceeds {MAX_MESSAGE_BYTES}"
            )
        try:
            event = parse_event(message.body)
        except ValidationError as exc:
            return _refusal(exc)
        unknown = meter.refusal(event)
        if unknown is not None:
            return Refusal(
                "unknown_reference", f"refers to nothing the configuration knows: {unknown}"
            )
        return horizon.refusal(event) or event

    async def _record(
        self,
        valid: list[tuple[Delivery, TicketEvent]],
        stopping: asyncio.Event,
        meter: ClockMeter,
    ) -> BatchOutcome | None:
        events = [event for _, event in valid]
        bodies = [message.body for message, _ in valid]

        async def attempt() -> BatchOutcome:
            return await self._recorder.record(events, self._now(), bodies, meter)

        def count() -> None:
            self.stats.retries += 1
            INTAKE_RETRIES.inc()

        return await until_done(
            attempt,
            transient=is_transient,
            stopping=stopping,
            max_delay_s=self._retry_max_s,
            event="intake.store_unavailable",
            first_delay_s=0.1,
            on_retry=count,
        )

    async def _dead_letter(self, message: Delivery, refusal: Refusal) -> None:
        """Copy the message to the dead-letter exchange with its reason.

        Raises only when the broker takes neither the copy nor one with the engine's own
        headers only; ``_refuse`` tries again.
        """
        ids = _ids(message.body) if refusal.kind != "too_large" else {}
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = refusal.reason
        headers["x-original-routing-key"] = message.routing_key or ""
        try:
            await self._publish_dead(message, headers)
        except Exception as exc:  # noqa: BLE001 - tried again without what the sender set
            # A header or property the broker delivered but cannot take back would stall
            # the batch on this message for good: the copy then carries only the reason.
            log.warning("intake.dead_letter_stripped", error=repr(exc), **ids)
            own = {key: headers[key] for key in (REASON_HEADER, "x-original-routing-key")}
            await self._publish_dead(message, own, with_properties=False)
        self.stats.dead_lettered += 1
        INTAKE_DEAD_LETTERS.labels(refusal.kind).inc()
        log.warning(
            "intake.dead_lettered",
            reason=refusal.reason,
            kind=refusal.kind,
            message_id=message.message_id,
            routing_key=message.routing_key,
            **ids,
        )

    async def _publish_dead(
        self,
        message: Delivery,
        headers: dict[str, Any],
        with_properties: bool = True,
    ) -> None:
        await self._dead_letters.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                content_type=message.content_type if with_properties else None,
                message_id=message.message_id if with_properties else None,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=message.routing_key or "",
        )
