"""Record a batch of events and re-measure their tickets' clocks, in one transaction.

The ticket rows are the locks: they are taken in ticket order before anything else, so
several engine processes can record events of the same tickets without losing an update
or deadlocking, and each ticket's clocks are measured from every event committed for it.
What is kept and where is the store's (``engine.store.recording``); what the events mean
is decided here.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload
from uuid import UUID

import structlog

from engine.business_time.calendar import from_utc_us
from engine.escalation import next_due, reinstated, superseded
from engine.events import TicketEvent, event_adapter
from engine.events.admission import MAX_EVENTS_PER_TICKET, Refusal, TicketAdmission
from engine.satisfaction import TicketRating, counted_rating
from engine.sla_clock.agreements import Agreement, UnknownReference
from engine.sla_clock.clocks import Clock, TicketClocks
from engine.sla_clock.meter import ClockMeter
from engine.sla_clock.timeline import Reading
from engine.store.recording import (
    CountedRating,
    FiredSteps,
    LockedTicket,
    MeasuredClock,
    MeasuredTicket,
    RecordingStore,
    RecordingTransaction,
    StepKey,
    StoppedClock,
)

log = structlog.get_logger(__name__)

_NO_STEPS: Mapping[float, tuple[datetime, bool]] = {}

# A ticket's clocks as a commit wrote them: the ticket's feed version after it, and each
# clock's key with its row as the store compares it (``_as_written``). Tuples of strings,
# numbers and instants: the collector stops tracking such a tuple once it survives a
# collection, where a dict is let go only by a full one, and the cache holds thousands.
_Written = tuple[int, tuple[tuple[str, tuple[object, ...]], ...]]
_NONE_WRITTEN: dict[str, tuple[object, ...]] = {}


@dataclass(frozen=True)
class BatchOutcome:
    """What one batch did."""

    recorded: int  # events new to the store
    measured: int  # tickets whose clocks were measured again
    waiting: int  # tickets still waiting for their ticket.created
    # the new events by type and channel, and the clocks this batch stopped, for metrics
    kinds: Mapping[tuple[str, str], int] = field(default_factory=dict)
    stopped: Sequence[StoppedClock] = ()
    # events already recorded (or twice in the batch), one id per copy: no second effect
    duplicate_ids: Sequence[str] = ()
    # events not recorded because of what their ticket holds: a second creation, or one
    # event past the limit; the caller dead-letters them with the reason
    refused: Mapping[UUID, Refusal] = field(default_factory=dict)
    # ratings that began to count in this batch, of created tickets: a new rating that is
    # its ticket's latest, or a rating held until this batch created its ticket
    rated: Sequence[TicketRating] = ()

    @property
    def duplicates(self) -> int:
        """Messages of the batch that had no effect of their own."""
        return len(self.duplicate_ids)


class _History(Sequence[TicketEvent]):
    """A ticket's events in one batch: those committed before it, held as their JSON
    texts and parsed only when read, then the batch's new ones.

    The recorder keeps the texts between batches rather than the parsed events: a
    parsed event is four or five objects that the collector walks at every collection
    until the cache drops them, where a tuple of strings it stops tracking after one.
    A ticket whose kept reading reads on (nearly every event, see ``measure_more``)
    asks only how many events it has; the others (a late event, a reload, a rating)
    parse them.
    """

    __slots__ = ("_events", "_new", "texts")

    def __init__(
        self,
        committed: tuple[str, ...],
        new: Sequence[TicketEvent],
        new_texts: Sequence[str],
        parsed: list[TicketEvent] | None = None,
    ) -> None:
        """``parsed``: the committed events, where the caller has parsed them already."""
        self._new = new
        self._events = [*parsed, *new] if parsed is not None else None
        # What the cache keeps of the ticket once the batch commits.
        self.texts = committed + tuple(new_texts)

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> TicketEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[TicketEvent]: ...

    def __getitem__(self, index: int | slice) -> TicketEvent | list[TicketEvent]:
        return self._read()[index]

    def __iter__(self) -> Iterator[TicketEvent]:
        return iter(self._read())

    def _read(self) -> list[TicketEvent]:
        if self._events is None:
            committed = self.texts[: len(self.texts) - len(self._new)]
            self._events = [*_parsed(committed), *self._new]
        return self._events


def _parsed(texts: Sequence[str]) -> list[TicketEvent]:
    """Events from the JSON texts they were recorded as."""
    return [event_adapter.validate_json(text) for text in texts]


@dataclass
class _Measurement:
    """What measuring a batch's tickets again said, and what to keep of it once committed."""

    waiting: int = 0  # tickets still waiting for their creation
    stopped: list[StoppedClock] = field(default_factory=list)
    history: dict[str, _History] = field(default_factory=dict)
    readings: dict[str, Reading] = field(default_factory=dict)
    written: dict[str, _Written] = field(default_factory=dict)
    rated: list[TicketRating] = field(default_factory=list)


class Recorder:
    """Records batches of events with the clock meter in force, keeping recent events parsed.

    A ticket is measured again from all its events each time one arrives; most of them
    came through this process moments before, so each ticket's committed events are kept
    (their texts, see ``_History``; a bounded cache of about ``cache_size`` events). The
    ticket's row counts its events under the same lock: when the two numbers agree, no
    process has recorded an event of the ticket since (events are only ever added), and
    the store is not asked for them at all. Beside them is kept what reading them said
    (``TicketClocks.reading``): when a ticket's new events all come after those, only the
    new ones are read, so an event costs the same however long the ticket's history.

    ``meter`` is a meter, or where to read the one in force (``RunningConfig.meter``):
    each batch reads it once, at its start, and measures with it to the end.
    """

    def __init__(
        self,
        meter: ClockMeter | Callable[[], ClockMeter],
        store: RecordingStore,
        cache_size: int = 100_000,
        max_events_per_ticket: int = MAX_EVENTS_PER_TICKET,
    ) -> None:
        self._meter_now = meter if callable(meter) else lambda: meter
        # The meter the kept readings were made with: a reading holds its configuration's
        # priority matrix, so one made before a reload is not read on after it.
        self._readings_meter: ClockMeter | None = None
        self.store = store
        self.max_events_per_ticket = max_events_per_ticket
        self._histories: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._readings: dict[str, Reading] = {}  # of the committed histories, where known
        self._cached_events = 0
        self._cache_size = cache_size
        self._snapshot_cache: dict[str, tuple[set[str], dict[str, Agreement]]] = {}
        # What this process's commits last wrote of each kept ticket's clocks, by the
        # feed version they left: while the row still has it, no other write has been.
        self._written: dict[str, _Written] = {}

    @property
    def meter(self) -> ClockMeter:
        """The meter in force now."""
        return self._meter_now()

    async def record(
        self,
        events: Sequence[TicketEvent],
        now: datetime,
        bodies: Sequence[bytes] | None = None,
        meter: ClockMeter | None = None,
    ) -> BatchOutcome:
        """Record new events and re-measure the clocks of their tickets; all or nothing.

        ``bodies`` are the messages the events were parsed from, stored as they came;
        without them each event is serialised again. ``meter``: the one the batch's
        events were checked with, else the one in force now.
        """
        meter = meter or self._meter_now()
        texts = (
            [body.decode() for body in bodies]
            if bodies is not None
            else [e.model_dump_json() for e in events]
        )
        # Each event once (a batch may hold a redelivery of one), with the text to store.
        by_id = {e.event_id: (e, text) for e, text in zip(events, texts, strict=True)}
        ticket_ids = sorted({event.ticket_id for event, _ in by_id.values()})
        async with self.store.transaction() as store:
            await store.add_tickets(ticket_ids)
            locked = await store.lock_tickets(ticket_ids)
            refused = await self._admit(store, by_id, locked)
            inserted = await store.add_events(list(by_id.values()))
            fresh = []
            new: dict[str, list[TicketEvent]] = defaultdict(list)
            new_texts: dict[str, list[str]] = defaultdict(list)
            for event_id in inserted:
                event, text = by_id[event_id]
                fresh.append(event)
                new[event.ticket_id].append(event)
                new_texts[event.ticket_id].append(text)
            changed = sorted(new)
            measurement = await self._measure_again(
                store, changed, locked, new, now, meter, new_texts
            )
        # Committed: what the next batch may take from memory.
        self._keep(measurement, meter)
        kinds: Counter[tuple[str, str]] = Counter((e.type, e.channel) for e in fresh)
        admitted = [e for e in events if e.event_id not in refused]
        return BatchOutcome(
            len(inserted),
            len(changed),
            measurement.waiting,
            kinds,
            measurement.stopped,
            _duplicates(admitted, inserted),
            refused,
            measurement.rated,
        )

    async def remeasure(self, ticket_ids: Sequence[str], now: datetime) -> int:
        """Measure tickets' clocks again from their recorded events; the number measured.

        For clocks written before their steps were stored (migration 002): without their
        steps' instants the scheduler could not fire them.
        """
        meter = self._meter_now()
        for ticket_id in ticket_ids:
            self._written.pop(ticket_id, None)  # their rows are in question: all written
        async with self.store.transaction() as store:
            locked = await store.lock_tickets(sorted(set(ticket_ids)))
            present = [ticket.ticket_id for ticket in locked]
            measurement = await self._measure_again(store, present, locked, {}, now, meter, {})
        self._keep(measurement, meter)
        return len(present)

    async def _admit(
        self,
        store: RecordingTransaction,
        by_id: dict[UUID, tuple[TicketEvent, str]],
        locked: Sequence[LockedTicket],
    ) -> dict[UUID, Refusal]:
        """Take out of ``by_id`` the events their locked tickets refuse, with the reasons.

        Most batches ask the store nothing: a ticket's creation is looked up only when the
        batch creates a ticket that holds events, and stored ids only near the limit.
        """
        counted = {ticket.ticket_id: ticket.event_count for ticket in locked}
        offered: dict[str, list[TicketEvent]] = defaultdict(list)
        creations: Counter[str] = Counter()
        for event, _ in by_id.values():
            offered[event.ticket_id].append(event)
            if event.type == "ticket.created":
                creations[event.ticket_id] += 1
        creating = [ticket_id for ticket_id in creations if counted[ticket_id]]
        crowded = [
            ticket_id
            for ticket_id, batch in offered.items()
            if counted[ticket_id] + len(batch) > self.max_events_per_ticket
        ]
        created_by = await self._creations(store, creating, counted)
        stored: set[UUID] = set()
        if crowded:
            stored = await store.stored(
                [e.event_id for ticket_id in crowded for e in offered[ticket_id]]
            )
        # Only these tickets can refuse an event: one near its limit, one created before
        # that the batch creates again, one the batch creates twice. The rest of a batch,
        # nearly always all of it, is not walked again.
        suspect = {*crowded, *created_by, *(t for t, n in creations.items() if n > 1)}
        refused: dict[UUID, Refusal] = {}
        for ticket_id in suspect:
            ticket = TicketAdmission(
                self.max_events_per_ticket, created_by.get(ticket_id), counted[ticket_id]
            )
            for event in offered[ticket_id]:
                if event.event_id in stored or event.event_id == ticket.created_by:
                    continue  # a duplicate: no effect, and no refusal either
                refusal = ticket.refusal(event)
                if refusal is None:
                    ticket.admit(event)
                else:
                    refused[event.event_id] = refusal
                    del by_id[event.event_id]
        return refused

    async def _creations(
        self, store: RecordingTransaction, ticket_ids: list[str], counted: Mapping[str, int]
    ) -> dict[str, UUID]:
        """The event that created each ticket, for tickets already holding events."""
        found: dict[str, UUID] = {}
        unknown = []
        for ticket_id in ticket_ids:
            kept = self._histories.get(ticket_id)
            if kept is None or len(kept) != counted[ticket_id]:
                unknown.append(ticket_id)
                continue
            # Parsed one at a time: the creation is nearly always the first.
            parsed = (event_adapter.validate_json(text) for text in kept)
            first = next((e for e in parsed if e.type == "ticket.created"), None)
            if first is not None:
                found[ticket_id] = first.event_id
        if unknown:
            found.update(await store.creations(unknown))
        return found

    async def _measure_again(
        self,
        store: RecordingTransaction,
        changed: list[str],
        locked: Sequence[LockedTicket],
        new: Mapping[str, list[TicketEvent]],
        now: datetime,
        meter: ClockMeter,
        new_texts: Mapping[str, list[str]],
    ) -> _Measurement:
        """Measure the clocks of locked tickets and write them back.

        ``new`` holds the events this batch inserted, by ticket, and ``new_texts`` their
        texts as stored.
        """
        if not changed:
            return _Measurement()
        if meter is not self._readings_meter:
            # A reload since the readings were made: read every event again, once.
            self._readings.clear()
            self._readings_meter = meter
        rows = {ticket.ticket_id: ticket for ticket in locked}
        counted = {ticket_id: rows[ticket_id].event_count for ticket_id in changed}
        history = await self._events_of(store, changed, counted, new, new_texts)
        readings = self._readings
        measured: list[tuple[str, TicketClocks | None]] = []
        tickets: list[MeasuredTicket] = []
        for ticket_id in changed:
            known, attached = self._snapshots(rows[ticket_id].agreements)
            events = history[ticket_id]
            clocks = _measure(
                meter,
                ticket_id,
                events,
                new.get(ticket_id, ()),
                # Taken out of the cache: it is read on in place, and what it says is
                # kept again only once the transaction commits (``_keep``). A batch that
                # rolls back leaves none for the ticket, and the next reads it afresh.
                readings.pop(ticket_id, None),
                attached,
                now,
            )
            measured.append((ticket_id, clocks))
            added = (
                {k: a for k, a in clocks.agreements.items() if k not in known}
                if clocks is not None
                else {}
            )
            tickets.append(MeasuredTicket(ticket_id, clocks, added, len(events)))
        # One write per ticket and per clock and batch: each write costs the database a
        # new row version, so nothing is written twice or deleted to be re-added.
        await store.write_tickets(tickets, now)
        fired = await store.fired_steps(changed)
        stopped, written = await self._write_clocks(store, measured, rows, fired, new, now)
        kept, rated = _ratings(measured, history, new)
        if kept:
            await store.write_ratings(kept)
        return _Measurement(
            waiting=sum(1 for _, clocks in measured if clocks is None),
            stopped=stopped,
            history=history,
            readings={t: clocks.reading for t, clocks in measured if clocks is not None},
            written=written,
            rated=rated,
        )

    async def _write_clocks(
        self,
        store: RecordingTransaction,
        measured: list[tuple[str, TicketClocks | None]],
        rows: Mapping[str, LockedTicket],
        fired: FiredSteps,
        new: Mapping[str, Sequence[TicketEvent]],
        now: datetime,
    ) -> tuple[list[StoppedClock], dict[str, _Written]]:
        """Write the measured clocks, with their next due instants and the standing of
        their fired steps; remove those that no longer apply. The clocks this write
        stopped, and what the commit will have written of each ticket's clocks.

        A clock whose row stands as this process last wrote it is not handed to the store
        at all (over a third of them in bench-intake's backlog): making its row, copying
        it and having the database compare it is work for no change. The store would
        leave such a row as it is anyway (see ``write_clocks``): the outcome is the same.
        """
        clocks: list[MeasuredClock] = []
        undone: list[StepKey] = []
        restored: list[StepKey] = []
        gone: list[tuple[str, str]] = []
        kept: dict[str, list[str]] = {}
        written: dict[str, _Written] = {}
        for ticket_id, ticket_clocks in measured:
            if ticket_clocks is None:
                continue
            row = rows[ticket_id]
            last = self._written.get(ticket_id)
            # While the row shows the version this process's commit left, its clock rows
            # are those kept; after another commit (a firing, another engine) they may be
            # anything, and every clock is written.
            if last is not None and last[0] == row.feed_version:
                standing = dict(last[1])
            else:
                standing = _NONE_WRITTEN
            now_written = []
            for clock in ticket_clocks.clocks:
                steps_fired = fired.get((ticket_id, clock.key), _NO_STEPS)
                fractions = clock.agreement.fractions
                due_us = clock.due_us[: len(fractions)]
                next_due_us = next_due(fractions, due_us, steps_fired)
                as_written = _as_written(clock, next_due_us)
                now_written.append((clock.key, as_written))
                if standing.get(clock.key) != as_written:
                    clocks.append(MeasuredClock(ticket_id, clock, next_due_us))
                if steps_fired:
                    # An event new in this batch that occurred before a step fired may
                    # undo it.
                    late = [event.occurred_at for event in new.get(ticket_id, ())]
                    superseding, restoring = _changed_steps(ticket_id, clock, steps_fired, late)
                    undone += superseding
                    restored += restoring
            written[ticket_id] = (row.feed_version + 1, tuple(now_written))
            # A clock that no longer applies (its agreement sets no target any more, or a
            # late event ended the ticket before it).
            measured_keys = [clock.key for clock in ticket_clocks.clocks]
            reading = ticket_clocks.reading
            if reading.whole and row.event_count:
                # Every clock measured afresh, but the row names only those last written:
                # update cycles that ended earlier are in the store alone.
                kept[ticket_id] = measured_keys
            else:
                gone += [
                    (ticket_id, key)
                    for key in set(row.clock_keys).difference(measured_keys)
                    if not reading.left_out(key)
                ]
        if undone:
            await store.supersede_steps(undone, now)
        if restored:
            await store.restore_steps(restored)
        # Of the clocks written: one left as it stood was announced when it was written.
        earliest = min((c.next_due_us for c in clocks if c.next_due_us is not None), default=None)
        if earliest is not None:
            await store.announce_due(from_utc_us(earliest))
        stopped = await store.write_clocks(clocks, now) if clocks else []
        if gone:
            await store.remove_clocks(gone)
        if kept:
            await store.keep_only_clocks(kept)
        return stopped, written

    def _snapshots(self, text: str) -> tuple[set[str], dict[str, Agreement]]:
        """A ticket's stored snapshots: their keys, and the agreements they hold.

        Tickets of one department and service share their snapshots, so the parsed form
        is kept by its text.
        """
        parsed = self._snapshot_cache.get(text)
        if parsed is None:
            known: dict[str, Any] = json.loads(text)
            parsed = (
                set(known),
                {key: Agreement.from_json(value) for key, value in known.items()},
            )
            if len(self._snapshot_cache) >= 10_000:
                self._snapshot_cache.clear()
            self._snapshot_cache[text] = parsed
        return parsed

    def _keep(self, measurement: _Measurement, meter: ClockMeter) -> None:
        """Keep committed histories, their readings and the clocks written, the most
        recently measured last; the oldest go first."""
        readings = measurement.readings
        if meter is not self._readings_meter:
            readings = {}  # made before a reload that a later batch has seen: not kept
        written = measurement.written
        kept = self._histories
        for ticket_id, events in measurement.history.items():
            before = kept.pop(ticket_id, None)
            self._cached_events += len(events) - (len(before) if before is not None else 0)
            kept[ticket_id] = events.texts
            reading = readings.get(ticket_id)
            if reading is not None:
                self._readings[ticket_id] = reading
            else:  # not measured (waiting, or unmeasurable): what is kept is of fewer events
                self._readings.pop(ticket_id, None)
            clocks_written = written.get(ticket_id)
            if clocks_written is not None:
                self._written[ticket_id] = clocks_written
            else:
                self._written.pop(ticket_id, None)
        while self._cached_events > self._cache_size and kept:
            ticket_id, texts = kept.popitem(last=False)
            self._cached_events -= len(texts)
            self._readings.pop(ticket_id, None)
            self._written.pop(ticket_id, None)

    async def _events_of(
        self,
        store: RecordingTransaction,
        ticket_ids: list[str],
        counted: Mapping[str, int],
        new: Mapping[str, list[TicketEvent]],
        new_texts: Mapping[str, list[str]],
    ) -> dict[str, _History]:
        """Every event of each locked ticket: ``counted`` is the number its row holds
        (before this batch), ``new`` the events this batch inserted, with their texts."""
        history: dict[str, _History] = {}
        unknown = []
        for ticket_id in ticket_ids:
            kept = self._histories.get(ticket_id)
            if kept is None and counted[ticket_id] == 0:
                kept = ()  # a new ticket: its row counts no events yet
            if kept is not None and len(kept) == counted[ticket_id]:
                history[ticket_id] = _History(
                    kept, new.get(ticket_id, []), new_texts.get(ticket_id, [])
                )
            else:
                unknown.append(ticket_id)
        if unknown:
            history.update(await self._read_events(store, unknown, new, new_texts))
        return history

    async def _read_events(
        self,
        store: RecordingTransaction,
        ticket_ids: list[str],
        new: Mapping[str, list[TicketEvent]],
        new_texts: Mapping[str, list[str]],
    ) -> dict[str, _History]:
        # What the cache holds of these tickets is not all they have (another process
        # recorded some, or the cache let them go): the events committed before this
        # batch are read from the store and parsed, the batch's own are those it inserted.
        ids = await store.event_ids(ticket_ids)
        inserted = {event.event_id for ticket_id in ticket_ids for event in new.get(ticket_id, ())}
        before = [event_id for _, event_id in ids if event_id not in inserted]
        texts = await store.payloads(before) if before else []
        committed: dict[str, tuple[list[str], list[TicketEvent]]] = {
            ticket_id: ([], []) for ticket_id in ticket_ids
        }
        for text, event in zip(texts, _parsed(texts), strict=True):
            kept_texts, parsed = committed[event.ticket_id]
            kept_texts.append(text)
            parsed.append(event)
        return {
            ticket_id: _History(
                tuple(kept_texts), new.get(ticket_id, []), new_texts.get(ticket_id, []), parsed
            )
            for ticket_id, (kept_texts, parsed) in committed.items()
        }


def _duplicates(events: Sequence[TicketEvent], inserted: Sequence[UUID]) -> list[str]:
    """The ids of the events that the store already held, one per copy in the batch."""
    if len(inserted) == len(events):
        return []
    first_copies = set(inserted)
    found = []
    for event in events:
        if event.event_id in first_copies:
            first_copies.discard(event.event_id)  # recorded now; a later copy is a duplicate
        else:
            found.append(str(event.event_id))
    return found


def _measure(
    meter: ClockMeter,
    ticket_id: str,
    events: Sequence[TicketEvent],
    new: Sequence[TicketEvent],
    reading: Reading | None,
    attached: dict[str, Agreement],
    now: datetime,
) -> TicketClocks | None:
    try:
        # The reading kept is of the committed events: it serves when the row's count of
        # them is what it read (measure_more checks), so that no process added any since.
        return meter.measure_more(reading, events, new, attached, now, in_place=True)
    except UnknownReference as exc:
        # The event was checked against the configuration when it arrived; only a
        # configuration that since dropped the department or service gets here. The
        # events stay recorded and the clocks come back when the reference does.
        log.error("ticket.unmeasurable", ticket_id=ticket_id, reason=str(exc))
        return None


def _ratings(
    measured: Sequence[tuple[str, TicketClocks | None]],
    history: Mapping[str, Sequence[TicketEvent]],
    new: Mapping[str, Sequence[TicketEvent]],
) -> tuple[list[CountedRating], list[TicketRating]]:
    """The ratings to keep as their tickets' counted ones, and those that begin to count.

    Only tickets this batch rated or created are looked at (the rest keep what they had):
    a new rating is kept when it is the ticket's latest (an older one arriving late is
    not); it begins to count then, or, while its ticket waits for its creation, when the
    batch that creates the ticket comes.
    """
    kept: list[CountedRating] = []
    rated: list[TicketRating] = []
    for ticket_id, clocks in measured:
        fresh = new.get(ticket_id, ())
        kinds = {event.type for event in fresh}
        if "ticket.rated" not in kinds and "ticket.created" not in kinds:
            continue
        rating = counted_rating(history[ticket_id])
        if rating is None:
            continue
        is_new = any(event.event_id == rating.event_id for event in fresh)
        if is_new:
            kept.append(CountedRating(ticket_id, rating.event_id, rating.score, rating.occurred_at))
        if clocks is not None and (is_new or "ticket.created" in kinds):
            timeline = clocks.timeline
            rated.append(
                TicketRating(ticket_id, timeline.department, timeline.service, rating.score)
            )
    return kept, rated


def _as_written(clock: Clock, next_due_us: int | None) -> tuple[object, ...]:
    """What of a clock's row ``write_clocks`` compares to decide whether to write it: its
    agreement, priority (and so target), state, start, stop, step instants and deadline,
    next due instant, and a stopped clock's business time (a running clock's is as of
    when its row was written, and not compared).

    The agreement goes by its key: a ticket's snapshot under a key is never replaced
    (snapshots are only added), so the key stands for its kind, owners, calendar and
    steps; and the tuple holds nothing the collector tracks (see ``_Written``).
    """
    return (
        clock.metric,
        clock.agreement_key,
        clock.priority,
        clock.state,
        clock.running,
        clock.started_at,
        clock.stopped_at,
        clock.due_us,
        next_due_us,
        None if clock.running else clock.elapsed,
    )


def _instant(us: int | None) -> datetime | None:
    """A UTC datetime from epoch microseconds: cheaper than the calendar's zone-aware one."""
    return None if us is None else from_utc_us(us)


def _changed_steps(
    ticket_id: str,
    clock: Clock,
    fired: Mapping[float, tuple[datetime, bool]],
    late_events: Sequence[datetime],
) -> tuple[list[StepKey], list[StepKey]]:
    """The clock's fired steps whose standing the new measurement changes: those that
    events new in this batch show it had not reached (to supersede), and superseded ones
    it had reached by the time they fired after all (to restore)."""
    undone = {step: at for step, (at, ok) in fired.items() if not ok}
    if not undone and not late_events:  # the usual case: nothing can have changed
        return [], []
    standing = {step: at for step, (at, ok) in fired.items() if ok}
    steps = clock.agreement.fractions
    due = [_instant(us) for us in clock.due_us[: len(steps)]]
    return (
        [(ticket_id, clock.key, s) for s in superseded(standing, steps, due, late_events)],
        [(ticket_id, clock.key, s) for s in reinstated(undone, steps, due)],
    )
