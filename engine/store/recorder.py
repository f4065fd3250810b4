"""Record a batch of events and re-measure their tickets' clocks, in one transaction.

The ticket rows are the locks: they are taken in ticket order before anything else, so
several engine processes can record events of the same tickets without losing an update
or deadlocking, and each ticket's clocks are measured from every event committed for it.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any
from uuid import UUID

import asyncpg
import structlog

from engine.events import TicketEvent, event_adapter
from engine.events.admission import MAX_EVENTS_PER_TICKET, Refusal, TicketAdmission
from engine.sla_clock.agreements import Agreement, UnknownReference
from engine.sla_clock.clocks import Clock, TicketClocks
from engine.sla_clock.meter import ClockMeter
from engine.sla_clock.timeline import Reading
from engine.store.connection import Connection
from engine.store.steps import (
    FiredSteps,
    StepKey,
    changed_steps,
    fired_steps,
    mark_standing,
    mark_superseded,
    step_literals,
    wake_schedulers,
)

log = structlog.get_logger(__name__)

CLOCK_COLUMNS = (
    "ticket_id", "clock_key", "metric", "agreement_kind", "agreement_key", "department",
    "service", "function", "priority", "calendar", "target_s", "state", "running",
    "elapsed_s", "fraction", "started_at", "stopped_at", "deadline", "next_due_at",
    "measured_at", "steps", "tiers", "step_due_at",
)  # fmt: skip
"""The columns of the clocks table, in the order the recorder writes them."""
# In the staging table the computed instants are epoch microseconds (see _UPSERT_CLOCKS).
_IN_MICROSECONDS = {"deadline": "deadline_us", "next_due_at": "next_due_us"}
# Every clock of a batch is measured at the same instant, which the merge takes as its
# one parameter rather than from each row.
_STAGED_CLOCK_COLUMNS = (
    *(
        _IN_MICROSECONDS.get(column, column)
        for column in CLOCK_COLUMNS[:-1]
        if column != "measured_at"
    ),
    "step_due_us",
)
_NEXT_DUE = CLOCK_COLUMNS.index("next_due_at")


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

    @property
    def duplicates(self) -> int:
        """Messages of the batch that had no effect of their own."""
        return len(self.duplicate_ids)


@dataclass(frozen=True, slots=True)
class StoppedClock:
    """A clock that a batch stopped (met or breached), with the business time it used."""

    metric: str
    agreement_kind: str
    elapsed_s: float


class Recorder:
    """Records batches of events for one clock meter, keeping recent events parsed.

    A ticket is measured again from all its events each time one arrives; most of them
    came through this process moments before, so each ticket's committed events are kept
    parsed (a bounded cache of about ``cache_size`` events), with their number. The
    ticket's row counts its events under the same lock: when the two numbers agree, no
    process has recorded an event of the ticket since (events are only ever added), and
    the database is not asked for them at all. Beside them is kept what reading them said
    (``TicketClocks.reading``): when a ticket's new events all come after those, only the
    new ones are read, so an event costs the same however long the ticket's history.
    """

    def __init__(
        self,
        meter: ClockMeter,
        cache_size: int = 100_000,
        max_events_per_ticket: int = MAX_EVENTS_PER_TICKET,
    ) -> None:
        self.meter = meter
        self.max_events_per_ticket = max_events_per_ticket
        self._histories: OrderedDict[str, list[TicketEvent]] = OrderedDict()
        self._readings: dict[str, Reading] = {}  # of the committed histories, where known
        self._cached_events = 0
        self._cache_size = cache_size
        self._snapshot_cache: dict[str, tuple[dict[str, Any], dict[str, Agreement]]] = {}

    async def record(
        self,
        connection: Connection,
        events: Sequence[TicketEvent],
        now: datetime,
        bodies: Sequence[bytes] | None = None,
    ) -> BatchOutcome:
        """Record new events and re-measure the clocks of their tickets; all or nothing.

        ``bodies`` are the messages the events were parsed from, stored as they came;
        without them each event is serialised again.
        """
        texts = (
            [body.decode() for body in bodies]
            if bodies is not None
            else [e.model_dump_json() for e in events]
        )
        # Each event once (a batch may hold a redelivery of one), with the text to store.
        by_id = {e.event_id: (e, text) for e, text in zip(events, texts, strict=True)}
        ticket_ids = sorted({event.ticket_id for event, _ in by_id.values()})
        async with connection.transaction():
            await connection.execute(
                "INSERT INTO tickets (ticket_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING",
                ticket_ids,
            )
            locked = await _lock_tickets(connection, ticket_ids)
            refused = await self._admit(connection, by_id, locked)
            await _stage(connection)
            await connection.copy_records_to_table(
                "staged_events",
                records=[
                    (e.event_id, e.ticket_id, e.type, e.occurred_at, text)
                    for e, text in by_id.values()
                ],
            )
            inserted = await connection.fetch(
                "INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)"
                " SELECT * FROM staged_events ON CONFLICT (event_id) DO NOTHING"
                " RETURNING event_id"
            )
            fresh = [by_id[row["event_id"]][0] for row in inserted]
            new: dict[str, list[TicketEvent]] = defaultdict(list)
            for event in fresh:
                new[event.ticket_id].append(event)
            changed = sorted(new)
            waiting, stopped, history, readings = await self._measure_again(
                connection, changed, locked, new, now
            )
        self._keep(history, readings)  # committed: what the next batch may take from memory
        kinds: Counter[tuple[str, str]] = Counter((e.type, e.channel) for e in fresh)
        admitted = [e for e in events if e.event_id not in refused]
        return BatchOutcome(
            len(inserted),
            len(changed),
            waiting,
            kinds,
            stopped,
            _duplicates(admitted, inserted),
            refused,
        )

    async def _admit(
        self,
        connection: Connection,
        by_id: dict[UUID, tuple[TicketEvent, str]],
        locked: Sequence[asyncpg.Record],
    ) -> dict[UUID, Refusal]:
        """Take out of ``by_id`` the events their locked tickets refuse, with the reasons.

        Most batches need no query: a ticket's creation is looked up only when the batch
        creates a ticket that holds events, and stored ids only near the limit.
        """
        counted: dict[str, int] = {row["ticket_id"]: row["event_count"] for row in locked}
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
        created_by = await self._creations(connection, creating, counted)
        stored: set[UUID] = set()
        if crowded:
            rows = await connection.fetch(
                "SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])",
                [e.event_id for ticket_id in crowded for e in offered[ticket_id]],
            )
            stored = {row["event_id"] for row in rows}
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
        self, connection: Connection, ticket_ids: list[str], counted: Mapping[str, int]
    ) -> dict[str, UUID]:
        """The event that created each ticket, for tickets already holding events."""
        found: dict[str, UUID] = {}
        unknown = []
        for ticket_id in ticket_ids:
            kept = self._histories.get(ticket_id)
            if kept is None or len(kept) != counted[ticket_id]:
                unknown.append(ticket_id)
                continue
            first = next((e for e in kept if e.type == "ticket.created"), None)
            if first is not None:
                found[ticket_id] = first.event_id
        if unknown:
            rows = await connection.fetch(
                "SELECT ticket_id, event_id FROM events"
                " WHERE ticket_id = ANY($1::text[]) AND type = 'ticket.created'",
                unknown,
            )
            found.update((row["ticket_id"], row["event_id"]) for row in rows)
        return found

    async def remeasure(
        self, connection: Connection, ticket_ids: Sequence[str], now: datetime
    ) -> int:
        """Measure tickets' clocks again from their recorded events; the number measured.

        For clocks written before their steps were stored (migration 002): without their
        steps' instants the scheduler could not fire them.
        """
        ordered = sorted(set(ticket_ids))
        async with connection.transaction():
            locked = await _lock_tickets(connection, ordered)
            await _stage(connection)
            present = [row["ticket_id"] for row in locked]
            *_, history, readings = await self._measure_again(connection, present, locked, {}, now)
        self._keep(history, readings)
        return len(present)

    async def _measure_again(
        self,
        connection: Connection,
        changed: list[str],
        locked: Sequence[asyncpg.Record],
        new: Mapping[str, list[TicketEvent]],
        now: datetime,
    ) -> tuple[int, list[StoppedClock], dict[str, list[TicketEvent]], dict[str, Reading]]:
        """Measure and store the clocks of locked tickets: how many still wait to be
        created, the clocks that stopped, and every event of each ticket measured, with
        what reading them said.

        ``new`` holds the events this batch inserted, by ticket.
        """
        if not changed:
            return 0, [], {}, {}
        snapshots = {row["ticket_id"]: self._snapshots(row["agreements"]) for row in locked}
        counted = {row["ticket_id"]: row["event_count"] for row in locked}
        history = await self._events_of(connection, changed, counted, new)
        readings = self._readings
        measured = [
            (ticket_id, _measure(self.meter, ticket_id, history[ticket_id],
                                 new.get(ticket_id, ()), readings.get(ticket_id),
                                 snapshots[ticket_id][1], now))
            for ticket_id in changed
        ]  # fmt: skip
        counts = {ticket_id: len(history[ticket_id]) for ticket_id in changed}
        keys = {row["ticket_id"]: row["clock_keys"] for row in locked}
        stored = {ticket_id: known for ticket_id, (known, _) in snapshots.items()}
        fired = await fired_steps(connection, changed)
        stopped = await _store(connection, measured, counts, stored, keys, now, fired, new)
        read = {ticket_id: m.reading for ticket_id, m in measured if m is not None}
        return sum(1 for _, m in measured if m is None), stopped, history, read

    def _snapshots(self, text: str) -> tuple[dict[str, Any], dict[str, Agreement]]:
        """A ticket's stored snapshots, as JSON and as agreements.

        Tickets of one department and service share their snapshots, so the parsed form
        is kept by its text.
        """
        parsed = self._snapshot_cache.get(text)
        if parsed is None:
            known = json.loads(text)
            parsed = (known, {key: Agreement.from_json(value) for key, value in known.items()})
            if len(self._snapshot_cache) >= 10_000:
                self._snapshot_cache.clear()
            self._snapshot_cache[text] = parsed
        return parsed

    def _keep(
        self, history: Mapping[str, list[TicketEvent]], readings: Mapping[str, Reading]
    ) -> None:
        """Keep committed histories and their readings, the most recently measured last;
        the oldest go first."""
        kept = self._histories
        for ticket_id, events in history.items():
            before = kept.pop(ticket_id, None)
            self._cached_events += len(events) - (len(before) if before is not None else 0)
            kept[ticket_id] = events
            reading = readings.get(ticket_id)
            if reading is not None:
                self._readings[ticket_id] = reading
            else:  # not measured (waiting, or unmeasurable): what is kept is of fewer events
                self._readings.pop(ticket_id, None)
        while self._cached_events > self._cache_size and kept:
            ticket_id, events = kept.popitem(last=False)
            self._cached_events -= len(events)
            self._readings.pop(ticket_id, None)

    async def _events_of(
        self,
        connection: Connection,
        ticket_ids: list[str],
        counted: Mapping[str, int],
        new: Mapping[str, list[TicketEvent]],
    ) -> dict[str, list[TicketEvent]]:
        """Every event of each locked ticket: ``counted`` is the number its row holds
        (before this batch), ``new`` the events this batch inserted."""
        history: dict[str, list[TicketEvent]] = {}
        unknown = []
        for ticket_id in ticket_ids:
            kept = self._histories.get(ticket_id)
            if kept is None and counted[ticket_id] == 0:
                kept = []  # a new ticket: its row counts no events yet
            if kept is not None and len(kept) == counted[ticket_id]:
                history[ticket_id] = kept + new.get(ticket_id, [])
            else:
                unknown.append(ticket_id)
        if unknown:
            history.update(await self._read_events(connection, unknown, new))
        return history

    async def _read_events(
        self,
        connection: Connection,
        ticket_ids: list[str],
        new: Mapping[str, list[TicketEvent]],
    ) -> dict[str, list[TicketEvent]]:
        # Ids first: the events this process has parsed are taken as they are, and only
        # the others' payloads (another process recorded them) are read and parsed.
        rows = await connection.fetch(
            "SELECT ticket_id, event_id FROM events WHERE ticket_id = ANY($1::text[])",
            ticket_ids,
        )
        known: dict[UUID, TicketEvent | None] = {row["event_id"]: None for row in rows}
        for ticket_id in ticket_ids:
            for parsed in chain(self._histories.get(ticket_id, ()), new.get(ticket_id, ())):
                if parsed.event_id in known:
                    known[parsed.event_id] = parsed
        missing = [event_id for event_id, event in known.items() if event is None]
        if missing:
            payloads = await connection.fetch(
                "SELECT payload::text AS payload FROM events WHERE event_id = ANY($1::uuid[])",
                missing,
            )
            read = [event_adapter.validate_json(row["payload"]) for row in payloads]
            known.update((event.event_id, event) for event in read)
        history: dict[str, list[TicketEvent]] = {ticket_id: [] for ticket_id in ticket_ids}
        for row in rows:
            event = known[row["event_id"]]
            assert event is not None  # read just above
            history[row["ticket_id"]].append(event)
        return history


def _duplicates(events: Sequence[TicketEvent], inserted: Sequence[asyncpg.Record]) -> list[str]:
    """The ids of the events that the store already held, one per copy in the batch."""
    if len(inserted) == len(events):
        return []
    first_copies = {row["event_id"] for row in inserted}
    found = []
    for event in events:
        if event.event_id in first_copies:
            first_copies.discard(event.event_id)  # recorded now; a later copy is a duplicate
        else:
            found.append(str(event.event_id))
    return found


async def _lock_tickets(connection: Connection, ticket_ids: Sequence[str]) -> list[asyncpg.Record]:
    """Lock the tickets' rows in ticket order (so that no two engines deadlock) and read
    the snapshots, clock keys and event counts kept on them."""
    return await connection.fetch(
        "SELECT ticket_id, agreements::text AS agreements, clock_keys, event_count"
        " FROM tickets"
        " WHERE ticket_id = ANY($1::text[]) ORDER BY ticket_id FOR UPDATE",
        ticket_ids,
    )


def _measure(
    meter: ClockMeter,
    ticket_id: str,
    events: list[TicketEvent],
    new: Sequence[TicketEvent],
    reading: Reading | None,
    attached: dict[str, Agreement],
    now: datetime,
) -> TicketClocks | None:
    try:
        # The reading kept is of the committed events: it serves when the row's count of
        # them is what it read (measure_more checks), so that no process added any since.
        return meter.measure_more(reading, events, new, attached, now)
    except UnknownReference as exc:
        # The event was checked against the configuration when it arrived; only a
        # configuration that since dropped the department or service gets here. The
        # events stay recorded and the clocks come back when the reference does.
        log.error("ticket.unmeasurable", ticket_id=ticket_id, reason=str(exc))
        return None


async def _store(
    connection: Connection,
    measured: list[tuple[str, TicketClocks | None]],
    event_counts: dict[str, int],
    snapshots: dict[str, dict[str, Any]],
    clock_keys: dict[str, list[str]],
    now: datetime,
    fired: FiredSteps,
    new: Mapping[str, Sequence[TicketEvent]],
) -> list[StoppedClock]:
    # One row version per ticket and per clock and batch: each write costs PostgreSQL a
    # new tuple and index entries, so nothing is written twice or deleted to be re-added.
    rows = [
        _ticket_row(ticket_id, clocks, snapshots[ticket_id], event_counts[ticket_id])
        for ticket_id, clocks in measured
    ]
    await connection.copy_records_to_table("staged_tickets", records=rows)
    await connection.execute(_UPDATE_TICKETS, now)
    ready = [(ticket_id, clocks) for ticket_id, clocks in measured if clocks is not None]
    clock_rows = []
    undone: list[StepKey] = []
    restored: list[StepKey] = []
    no_steps: dict[float, tuple[datetime, bool]] = {}
    for ticket_id, ticket_clocks in ready:
        for clock in ticket_clocks.clocks:
            steps_fired = fired.get((ticket_id, clock.key), no_steps)
            clock_rows.append(_clock_row(ticket_id, clock, steps_fired))
            if steps_fired:
                # An event new in this batch that occurred before a step fired may undo it.
                late = [event.occurred_at for event in new.get(ticket_id, ())]
                superseding, restoring = changed_steps(ticket_id, clock, steps_fired, late)
                undone += superseding
                restored += restoring
    if undone:
        await mark_superseded(connection, undone, now)
    if restored:
        await mark_standing(connection, restored)
    dues = [row[_NEXT_DUE] for row in clock_rows]
    earliest = min((due for due in dues if isinstance(due, int)), default=None)
    if earliest is not None:
        await wake_schedulers(connection, earliest)
    stopped: list[StoppedClock] = []
    if clock_rows:
        await connection.copy_records_to_table(
            "staged_clocks", records=clock_rows, columns=_STAGED_CLOCK_COLUMNS
        )
        stopped = [StoppedClock(*row) for row in await connection.fetch(_UPSERT_CLOCKS, now)]
    gone = [
        (ticket_id, key)
        for ticket_id, clocks in ready
        for key in set(clock_keys[ticket_id]) - {clock.key for clock in clocks.clocks}
    ]
    if gone:  # a clock that no longer applies (its agreement sets no target any more)
        await connection.execute(
            "DELETE FROM clocks USING unnest($1::text[], $2::text[]) AS g(ticket_id, clock_key)"
            " WHERE clocks.ticket_id = g.ticket_id AND clocks.clock_key = g.clock_key",
            [t for t, _ in gone],
            [k for _, k in gone],
        )
    return stopped


# Rows are written through COPY into per-session staging tables, then merged with one
# statement each: binary COPY costs this process a quarter of the CPU that the same rows
# cost as unnest() arrays (asyncpg checks every array element for being a sub-array),
# and this process's one core is what bounds intake.
# The merges are prepared statements (asyncpg prepares every statement it runs), and
# after five runs PostgreSQL may keep one generic plan, made without knowing how many rows
# the staging table holds. On the 200,000-event benchmark the ticket update's time then
# grew with the table, from 7 to 91 ms a batch, as if it read every ticket to update the
# few thousand staged ones (planned afresh, it joins them through the primary key: about
# 10 ms). Planning each time costs a fraction of a millisecond. Hence force_custom_plan,
# for this transaction only.
_STAGING = """
SET LOCAL client_min_messages = warning;
SET LOCAL plan_cache_mode = force_custom_plan;
CREATE TEMP TABLE IF NOT EXISTS staged_events (
    event_id uuid, ticket_id text, type text, occurred_at timestamptz, payload jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_tickets (
    ticket_id text, created_at timestamptz, department text, service text, priority text,
    status text, assigned_function text, agreement_kind text, agreements jsonb,
    clock_keys text[], event_count integer, closed_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_clocks (
    ticket_id text, clock_key text, metric text, agreement_kind text, agreement_key text,
    department text, service text, function text, priority text, calendar text,
    target_s double precision, state text, running boolean, elapsed_s double precision,
    fraction double precision, started_at timestamptz, stopped_at timestamptz,
    deadline_us bigint, next_due_us bigint,
    steps text, tiers text, step_due_us text
) ON COMMIT DELETE ROWS;
"""


async def _stage(connection: Connection) -> None:
    """Make sure this session has its staging tables (emptied at every commit)."""
    await connection.execute(_STAGING)


_UPDATE_TICKETS = (
    "UPDATE tickets SET created_at = coalesce(u.created_at, tickets.created_at),"
    " department = coalesce(u.department, tickets.department),"
    " service = coalesce(u.service, tickets.service),"
    " priority = coalesce(u.priority, tickets.priority),"
    " status = coalesce(u.status, tickets.status),"
    " assigned_function = CASE WHEN u.created_at IS NULL THEN tickets.assigned_function"
    " ELSE u.assigned_function END,"
    " agreement_kind = coalesce(u.agreement_kind, tickets.agreement_kind),"
    " agreements = coalesce(u.agreements, tickets.agreements),"
    " clock_keys = coalesce(u.clock_keys, tickets.clock_keys),"
    " closed_at = CASE WHEN u.created_at IS NULL THEN tickets.closed_at ELSE u.closed_at END,"
    " event_count = u.event_count, updated_at = $1"
    " FROM staged_tickets AS u WHERE tickets.ticket_id = u.ticket_id"
)


# The steps travel as array literals, and their instants as epoch microseconds: COPY's
# binary arrays cost this process a check of every element, which the database can do
# on its own, idle, core instead. The deadline and next due instant travel as epoch
# microseconds too: making a datetime for COPY to take apart again costs this process.
# It returns the clocks that it stopped: every sub-statement of a WITH sees the table as
# it was before the upsert, so ``before`` holds the previous stop (none for a new clock).
def _staged(column: str) -> str:
    """A clocks column as read from the staging table."""
    if column == "measured_at":
        return "$1::timestamptz"
    if column in _IN_MICROSECONDS:
        return f"'epoch'::timestamptz + {_IN_MICROSECONDS[column]} * interval '1 microsecond'"
    return column


_UPSERT_CLOCKS = (
    "WITH before AS (SELECT c.ticket_id, c.clock_key, c.stopped_at FROM clocks AS c"
    " JOIN staged_clocks AS s USING (ticket_id, clock_key)),"
    f" written AS (INSERT INTO clocks ({', '.join(CLOCK_COLUMNS)})"
    f" SELECT {', '.join(_staged(column) for column in CLOCK_COLUMNS[:-3])},"
    " steps::float8[], tiers::text[],"
    " (SELECT array_agg('epoch'::timestamptz + u * interval '1 microsecond' ORDER BY n)"
    "  FROM unnest(step_due_us::bigint[]) WITH ORDINALITY AS d(u, n))"
    " FROM staged_clocks"
    " ON CONFLICT (ticket_id, clock_key) DO UPDATE SET "
    + ", ".join(f"{column} = EXCLUDED.{column}" for column in CLOCK_COLUMNS[2:])
    + " RETURNING ticket_id, clock_key, metric, agreement_kind, elapsed_s, stopped_at)"
    " SELECT w.metric, w.agreement_kind, w.elapsed_s FROM written AS w"
    " LEFT JOIN before AS b USING (ticket_id, clock_key)"
    " WHERE w.stopped_at IS NOT NULL AND b.stopped_at IS NULL"
)


def _ticket_row(
    ticket_id: str, clocks: TicketClocks | None, snapshots: dict[str, Any], event_count: int
) -> tuple[object, ...]:
    if clocks is None:  # waiting for its creation, or unmeasurable: keep what is there
        return (ticket_id, *(None,) * 9, event_count, None)
    timeline = clocks.timeline
    sla = next((c for c in clocks.clocks if c.agreement.kind != "ola"), None)
    return (
        ticket_id,
        timeline.created_at,
        timeline.department,
        timeline.service,
        timeline.priority_at(None),
        timeline.status,
        timeline.assigned_function,
        sla.agreement.kind if sla is not None else None,
        _snapshots_to_write(clocks, snapshots),
        [clock.key for clock in clocks.clocks],
        event_count,
        timeline.closed_at,
    )


def _snapshots_to_write(clocks: TicketClocks, known: dict[str, Any]) -> str | None:
    """Every snapshot the ticket has had, when a clock attached a new one; else None."""
    new = [(key, a) for key, a in clocks.agreements.items() if key not in known]
    if not new:
        return None
    parts = [f"{json.dumps(key)}: {json.dumps(value)}" for key, value in known.items()]
    parts += [f"{json.dumps(key)}: {_agreement_text(a)}" for key, a in new]
    return "{" + ", ".join(parts) + "}"


# Every new ticket writes its SLA's snapshot, and the meter attaches one agreement object
# per department and service: its JSON text is made once, not once per ticket. Keyed by
# identity (agreements hold dicts, so they do not hash); holding the agreement keeps its
# id from being reused while cached.
_AGREEMENT_TEXTS: dict[int, tuple[Agreement, str]] = {}


def _agreement_text(agreement: Agreement) -> str:
    cached = _AGREEMENT_TEXTS.get(id(agreement))
    if cached is not None:
        return cached[1]
    text = json.dumps(agreement.to_json())
    if len(_AGREEMENT_TEXTS) >= 10_000:
        _AGREEMENT_TEXTS.clear()
    _AGREEMENT_TEXTS[id(agreement)] = (agreement, text)
    return text


def _clock_row(
    ticket_id: str, clock: Clock, fired: Mapping[float, tuple[datetime, bool]]
) -> tuple[object, ...]:
    steps, tiers, due_us, next_due_us = step_literals(clock, fired)
    return (
        ticket_id,
        clock.key,
        clock.metric,
        clock.agreement.kind,
        clock.agreement_key,
        clock.agreement.department,
        clock.agreement.service,
        clock.agreement.function,
        clock.priority,
        clock.agreement.calendar,
        clock.target.total_seconds(),
        clock.state,
        clock.running,
        clock.elapsed.total_seconds(),
        clock.fraction,
        clock.started_at,
        clock.stopped_at,
        clock.due_us[-1] if clock.running else None,  # the deadline
        next_due_us,
        steps,
        tiers,
        due_us,
    )
