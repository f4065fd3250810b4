"""The recording port in memory, on ``Tables``: one batch at a time, all or nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from uuid import UUID

from engine.business_time.calendar import from_utc_us
from engine.events import TicketEvent
from engine.store.memory.tables import ClockRow, EventRow, RatingRow, Tables, TicketRow
from engine.store.recording import (
    CountedRating,
    FiredSteps,
    LockedTicket,
    MeasuredClock,
    MeasuredTicket,
    StepKey,
    StoppedClock,
)


def _instant(us: int | None) -> datetime | None:
    return None if us is None else from_utc_us(us)


class MemoryRecordingTransaction:
    """One batch inside a transaction of the tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self.announced: datetime | None = None  # told to listeners once committed

    async def add_tickets(self, ticket_ids: Sequence[str]) -> None:
        """Make a row for each ticket the store does not know yet."""
        for ticket_id in ticket_ids:
            self._tables.tickets.setdefault(ticket_id, TicketRow(ticket_id))

    async def lock_tickets(self, ticket_ids: Sequence[str]) -> list[LockedTicket]:
        """The rows of the known tickets among these, in ticket order (the tables' lock is
        held for the whole transaction)."""
        rows = [self._tables.tickets[t] for t in sorted(ticket_ids) if t in self._tables.tickets]
        return [
            LockedTicket(
                row.ticket_id,
                json.dumps(row.agreements),
                list(row.clock_keys),
                row.event_count,
                row.feed_version,
            )
            for row in rows
        ]

    async def creations(self, ticket_ids: Sequence[str]) -> dict[str, UUID]:
        """The id of the stored ``ticket.created`` of each ticket that has one."""
        wanted = set(ticket_ids)
        return {
            event.ticket_id: event.event_id
            for event in self._tables.events.values()
            if event.ticket_id in wanted and event.type == "ticket.created"
        }

    async def stored(self, event_ids: Sequence[UUID]) -> set[UUID]:
        """The ids among these that the store holds."""
        return {event_id for event_id in event_ids if event_id in self._tables.events}

    async def add_events(self, events: Sequence[tuple[TicketEvent, str]]) -> list[UUID]:
        """Store the events with their JSON text; the ids of those new to the store."""
        added = []
        for event, text in events:
            if event.event_id in self._tables.events:
                continue
            self._tables.events[event.event_id] = EventRow(
                event.event_id, event.ticket_id, event.type, event.occurred_at, text
            )
            added.append(event.event_id)
        return added

    async def event_ids(self, ticket_ids: Sequence[str]) -> list[tuple[str, UUID]]:
        """Every stored event of these tickets, as (ticket, event id)."""
        wanted = set(ticket_ids)
        return [
            (event.ticket_id, event.event_id)
            for event in self._tables.events.values()
            if event.ticket_id in wanted
        ]

    async def payloads(self, event_ids: Sequence[UUID]) -> list[str]:
        """The stored JSON text of these events."""
        return [self._tables.events[event_id].payload for event_id in event_ids]

    async def fired_steps(self, ticket_ids: Sequence[str]) -> FiredSteps:
        """Every step recorded for these tickets' clocks, with its standing."""
        wanted = set(ticket_ids)
        found: dict[tuple[str, str], dict[float, tuple[datetime, bool]]] = {}
        for (ticket_id, clock_key, step), row in self._tables.steps.items():
            if ticket_id in wanted:
                standing = (row.fired_at, row.status == "fired")
                found.setdefault((ticket_id, clock_key), {})[step] = standing
        return found

    async def write_tickets(self, tickets: Sequence[MeasuredTicket], now: datetime) -> None:
        """Write what the measurement says of each ticket, and its count of events."""
        for ticket in tickets:
            row = self._tables.tickets[ticket.ticket_id]
            row.event_count = ticket.event_count
            row.updated_at = now
            clocks = ticket.clocks
            if clocks is None:  # waiting for its creation: the row keeps what it holds
                continue
            timeline = clocks.timeline
            sla = next((c for c in clocks.clocks if c.agreement.kind != "ola"), None)
            row.created_at = timeline.created_at
            row.department = timeline.department
            row.service = timeline.service
            row.priority = timeline.priority_at(None)
            row.status = timeline.status
            row.assigned_function = timeline.assigned_function
            row.assigned_team = timeline.assigned_team
            if sla is not None:
                row.agreement_kind = sla.agreement.kind
            row.agreements.update(
                (key, agreement.to_json()) for key, agreement in ticket.new_agreements.items()
            )
            row.clock_keys = [clock.key for clock in clocks.clocks]
            row.closed_at = timeline.closed_at
            self._tables.feed_changed(ticket.ticket_id, now)

    async def write_clocks(
        self, clocks: Sequence[MeasuredClock], now: datetime
    ) -> list[StoppedClock]:
        """Write the clocks as measured at ``now``; those that this write stopped."""
        stopped = []
        for measured in clocks:
            clock, agreement = measured.clock, measured.clock.agreement
            key = (measured.ticket_id, clock.key)
            before = self._tables.clocks.get(key)
            row = ClockRow(
                ticket_id=measured.ticket_id,
                clock_key=clock.key,
                metric=clock.metric,
                agreement_kind=agreement.kind,
                agreement_key=clock.agreement_key,
                department=agreement.department,
                service=agreement.service,
                function=agreement.function,
                priority=clock.priority,
                calendar=agreement.calendar,
                target_s=clock.target.total_seconds(),
                state=clock.state,
                running=clock.running,
                elapsed_s=clock.elapsed.total_seconds(),
                fraction=clock.fraction,
                started_at=clock.started_at,
                stopped_at=clock.stopped_at,
                deadline=_instant(clock.due_us[-1]) if clock.running else None,
                next_due_at=_instant(measured.next_due_us),
                measured_at=now,
                steps=list(agreement.fractions),
                tiers=[tier for _fraction, tier in agreement.steps],
                step_due_at=[_instant(us) for us in clock.due_us[: len(agreement.steps)]],
            )
            if before is not None and _unchanged(before, row):
                continue  # as in PostgreSQL: not written again, so stopped before if at all
            self._tables.clocks[key] = row
            if clock.stopped_at is not None and (before is None or before.stopped_at is None):
                stopped.append(
                    StoppedClock(clock.metric, agreement.kind, clock.elapsed.total_seconds())
                )
        return stopped

    async def remove_clocks(self, clocks: Sequence[tuple[str, str]]) -> None:
        """Remove clocks (ticket, clock key) that no longer apply."""
        for key in clocks:
            self._tables.clocks.pop(key, None)

    async def keep_only_clocks(self, clocks: Mapping[str, Sequence[str]]) -> None:
        """Remove every clock of each ticket but those listed (by key) for it."""
        for key in list(self._tables.clocks):
            ticket_id, clock_key = key
            if ticket_id in clocks and clock_key not in clocks[ticket_id]:
                del self._tables.clocks[key]

    async def supersede_steps(self, steps: Sequence[StepKey], now: datetime) -> None:
        """Keep the steps in the record, marked superseded (their notices stay sent)."""
        for key in steps:
            row = self._tables.steps[key]
            row.status, row.superseded_at = "superseded", now

    async def restore_steps(self, steps: Sequence[StepKey]) -> None:
        """Mark superseded steps fired again, as they were before."""
        for key in steps:
            row = self._tables.steps[key]
            row.status, row.superseded_at = "fired", None

    async def announce_due(self, at: datetime) -> None:
        """Tell every scheduler of an earlier due instant, once the batch commits."""
        self.announced = at if self.announced is None else min(self.announced, at)

    async def write_ratings(self, ratings: Sequence[CountedRating]) -> None:
        """Keep each ticket's rating that counts, in place of any kept for it before."""
        for rating in ratings:
            self._tables.ratings[rating.ticket_id] = RatingRow(*rating)


class MemoryRecordingStore:
    """The recording port on in-memory tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryRecordingTransaction]:
        """One batch: commits on leaving, rolls back on an exception."""
        async with self._tables.transaction() as tables:
            batch = MemoryRecordingTransaction(tables)
            yield batch
        if batch.announced is not None:  # as NOTIFY: only once committed
            self._tables.announce_due(batch.announced)


def _unchanged(before: ClockRow, after: ClockRow) -> bool:
    """Whether a clock measured again says what its row says (PostgreSQL's
    ``UPSERT_CLOCKS`` then keeps the row): all but the instant it was measured at, and a
    running clock's elapsed time and fraction, which are as of that instant."""
    if after.running:
        after = replace(after, elapsed_s=before.elapsed_s, fraction=before.fraction)
    return replace(after, measured_at=before.measured_at) == before
