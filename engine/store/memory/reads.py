"""The read ports on the in-memory tables, answering as the PostgreSQL statements do."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta

from engine.store.memory.tables import ClockRow, Tables
from engine.store.reads import ChannelBacklog, ClockGroup, GaugeCounts, StoredClock, TicketRows


class MemoryReads:
    """The read ports on ``Tables``; each read is one snapshot, taken under their lock."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def gauge_counts(
        self, now: datetime, month_start: datetime, windows: Sequence[timedelta]
    ) -> GaugeCounts:
        """Open clocks and those stopped since ``month_start``, due steps and the outbox."""
        async with self._tables.snapshot() as tables:
            groups: dict[tuple[str, str, str, str], list[ClockRow]] = {}
            for clock in tables.clocks.values():
                if clock.stopped_at is None or clock.stopped_at >= month_start:
                    key = (clock.department, clock.metric, clock.agreement_kind)
                    groups.setdefault((*key, _bucket(clock, now)), []).append(clock)
            due = sum(
                1
                for clock in tables.clocks.values()
                if clock.next_due_at is not None and clock.next_due_at <= now
            )
            channels: dict[str, list[tuple[str, datetime]]] = {}
            for notice in tables.outbox.values():
                if notice.status != "sent":
                    channels.setdefault(notice.channel, []).append(
                        (notice.status, notice.created_at)
                    )
        clocks = tuple(
            ClockGroup(
                department=department,
                metric=metric,
                agreement_kind=kind,
                bucket=bucket,
                clocks=len(rows),
                at_risk=sum(1 for clock in rows if _at_risk(clock, now)),
                breaching=tuple(
                    sum(1 for clock in rows if _breaching(clock, now, window)) for window in windows
                ),
            )
            for (department, metric, kind, bucket), rows in sorted(groups.items())
        )
        outbox = tuple(
            ChannelBacklog(
                channel=channel,
                pending=sum(1 for status, _ in notices if status == "pending"),
                oldest_pending=min(
                    (at for status, at in notices if status == "pending"), default=None
                ),
                failed=sum(1 for status, _ in notices if status == "failed"),
            )
            for channel, notices in sorted(channels.items())
        )
        return GaugeCounts(clocks, due, outbox)

    async def ticket(self, ticket_id: str) -> TicketRows | None:
        """The ticket's rows, read in one snapshot; None when no event of it was recorded."""
        async with self._tables.snapshot() as tables:
            ticket = tables.tickets.get(ticket_id)
            if ticket is None:
                return None
            payloads = [row.payload for row in tables.events.values() if row.ticket_id == ticket_id]
            fired = sorted(
                (step.clock_key, step.step, step.fired_at, step.status)
                for step in tables.steps.values()
                if step.ticket_id == ticket_id
            )
            agreements = json.dumps(ticket.agreements, ensure_ascii=False)
        return TicketRows(payloads, agreements, fired)

    async def tickets_without_steps(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` ids after ``after``, in order, of tickets with a stepless clock."""
        async with self._tables.snapshot() as tables:
            found = {
                clock.ticket_id
                for clock in tables.clocks.values()
                if not clock.steps and clock.ticket_id > after
            }
        return sorted(found)[:limit]

    async def clocks_of_period(
        self, start: datetime, end: datetime, department: str | None
    ) -> AsyncGenerator[StoredClock, None]:
        """Their clocks in ticket then clock key order, read in one snapshot."""
        async with self._tables.snapshot() as tables:
            created = _created_in(tables, start, end)
            clocks = [
                _stored(clock)
                for (ticket_id, _), clock in sorted(tables.clocks.items(), key=lambda i: i[0])
                if ticket_id in created and department in (None, clock.department)
            ]
        for clock in clocks:
            yield clock

    async def events_of_period(self, start: datetime, end: datetime) -> AsyncGenerator[str, None]:
        """All their events' JSON payloads, in occurred-at then event id order."""
        async with self._tables.snapshot() as tables:
            created = _created_in(tables, start, end)
            events = sorted(
                (row for row in tables.events.values() if row.ticket_id in created),
                key=lambda row: (row.occurred_at, row.event_id),
            )
            payloads = [row.payload for row in events]
        for payload in payloads:
            yield payload


def _created_in(tables: Tables, start: datetime, end: datetime) -> set[str]:
    return {
        ticket.ticket_id
        for ticket in tables.tickets.values()
        if ticket.created_at is not None and start <= ticket.created_at < end
    }


def _stored(clock: ClockRow) -> StoredClock:
    return StoredClock(
        ticket_id=clock.ticket_id,
        department=clock.department,
        service=clock.service,
        priority=clock.priority,
        metric=clock.metric,
        agreement_kind=clock.agreement_kind,
        function=clock.function,
        state=clock.state,
        running=clock.running,
        deadline=clock.deadline,
        elapsed_s=clock.elapsed_s,
        target_s=clock.target_s,
    )


def _overdue(clock: ClockRow, now: datetime) -> bool:
    """Running past its deadline (a running clock without one is not)."""
    return clock.running and clock.deadline is not None and clock.deadline <= now


def _bucket(clock: ClockRow, now: datetime) -> str:
    if clock.stopped_at is not None:
        return clock.state
    if clock.state == "breached" or _overdue(clock, now):
        return "open_breached"
    return "open_running" if clock.running else "open_paused"


def _at_risk(clock: ClockRow, now: datetime) -> bool:
    """Open, not breached, past the first warning below 1.0."""
    if clock.stopped_at is not None or clock.state == "breached":
        return False
    # SQL's NOT (running AND deadline <= now) is unknown, so false, without a deadline.
    if clock.running and (clock.deadline is None or clock.deadline <= now):
        return False
    if not clock.steps or clock.steps[0] >= 1:
        return False
    if clock.running:
        first = clock.step_due_at[0] if clock.step_due_at else None
        return first is not None and first <= now
    return clock.fraction >= clock.steps[0]


def _breaching(clock: ClockRow, now: datetime, window: timedelta) -> bool:
    """Running, open, with its deadline within ``window`` from now."""
    deadline = clock.deadline
    return (
        clock.stopped_at is None
        and clock.running
        and deadline is not None
        and now < deadline <= now + window
    )
