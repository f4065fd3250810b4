"""The read ports on the in-memory tables, answering as the PostgreSQL statements do."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime, timedelta

from engine.satisfaction import RatingCounts, TicketRating, count_ratings
from engine.store.memory.tables import ClockRow, Tables, TicketRow
from engine.store.reads import (
    ChannelBacklog,
    ClockGroup,
    GaugeCounts,
    StoredClock,
    TicketRows,
    WorklistKey,
    WorklistQuery,
)

# Where a ticket without a running deadline sorts: last, as 'infinity' does in SQL.
_NO_DEADLINE = datetime.max.replace(tzinfo=UTC)


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
            return _ticket_rows(tables, ticket_id)

    async def tickets_without_steps(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` ids after ``after``, in order, of tickets with a stepless clock."""
        async with self._tables.snapshot() as tables:
            found = {
                clock.ticket_id
                for clock in tables.clocks.values()
                if not clock.steps and clock.ticket_id > after
            }
        return sorted(found)[:limit]

    async def worklist(self, query: WorklistQuery) -> list[WorklistKey]:
        """Up to ``query.limit`` tickets after ``query.after``, in worklist order."""
        async with self._tables.snapshot() as tables:
            chosen: dict[str, list[ClockRow]] = {}
            for clock in tables.clocks.values():
                ticket = tables.tickets.get(clock.ticket_id)  # joined, as in SQL
                if ticket is None:
                    continue
                if _ticket_passes(ticket, query) and _clock_passes(clock, query):
                    chosen.setdefault(clock.ticket_id, []).append(clock)
        listed = []
        for ticket_id, clocks in chosen.items():
            breached = any(_breached(clock, query.now) for clock in clocks)
            if query.breached is not None and breached != query.breached:
                continue
            deadlines = [c.deadline for c in clocks if c.running and c.deadline is not None]
            listed.append(WorklistKey(min(deadlines) if deadlines else None, ticket_id))
        listed.sort(key=_order)
        if query.after is not None:
            after = _order(query.after)
            listed = [key for key in listed if _order(key) > after]
        return listed[: query.limit]

    async def tickets(self, ticket_ids: Sequence[str]) -> dict[str, TicketRows]:
        """The rows of each ticket that has any, read in one snapshot."""
        async with self._tables.snapshot() as tables:
            read = {ticket_id: _ticket_rows(tables, ticket_id) for ticket_id in ticket_ids}
        return {ticket_id: rows for ticket_id, rows in read.items() if rows is not None}

    async def clocks_of_period(
        self, start: datetime, end: datetime, department: str | None, function: str | None = None
    ) -> AsyncGenerator[StoredClock, None]:
        """Their clocks in ticket then clock key order, read in one snapshot."""
        async with self._tables.snapshot() as tables:
            created = _created_in(tables, start, end)
            clocks = [
                _stored(clock)
                for (ticket_id, _), clock in sorted(tables.clocks.items(), key=lambda i: i[0])
                if ticket_id in created
                and department in (None, clock.department)
                and (
                    function is None
                    or (clock.agreement_kind == "ola" and clock.function == function)
                )
            ]
        for clock in clocks:
            yield clock

    async def satisfaction_of_period(
        self, start: datetime, end: datetime, department: str | None = None
    ) -> list[RatingCounts]:
        """Rated tickets created in ``[start, end)`` counted by score, per department and
        service, in that order."""
        async with self._tables.snapshot() as tables:
            created = _created_in(tables, start, end)
            rated = [
                TicketRating(ticket.ticket_id, ticket.department, ticket.service, rating.score)
                for rating in tables.ratings.values()
                if rating.ticket_id in created
                and (ticket := tables.tickets[rating.ticket_id]).department is not None
                and ticket.service is not None
                and department in (None, ticket.department)
            ]
        return count_ratings(rated)

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


def _ticket_rows(tables: Tables, ticket_id: str) -> TicketRows | None:
    ticket = tables.tickets.get(ticket_id)
    if ticket is None:
        return None
    payloads = [row.payload for row in tables.events.values() if row.ticket_id == ticket_id]
    fired = sorted(
        (step.clock_key, step.step, step.fired_at, step.status)
        for step in tables.steps.values()
        if step.ticket_id == ticket_id
    )
    return TicketRows(payloads, json.dumps(ticket.agreements, ensure_ascii=False), fired)


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


def _order(key: WorklistKey) -> tuple[datetime, str]:
    return (_NO_DEADLINE if key.next_deadline is None else key.next_deadline, key.ticket_id)


def _ticket_passes(ticket: TicketRow, query: WorklistQuery) -> bool:
    return (
        query.department in (None, ticket.department)
        and query.service in (None, ticket.service)
        and query.priority in (None, ticket.priority)
        and query.function in (None, ticket.assigned_function)
        and query.team in (None, ticket.assigned_team)
    )


def _clock_passes(clock: ClockRow, query: WorklistQuery) -> bool:
    now = query.now
    if query.scope == "open" and clock.stopped_at is not None:
        return False
    if query.metric is not None and clock.metric != query.metric:
        return False
    if query.state is not None and _live_state(clock, now) != query.state:
        return False
    within = query.breaching_within
    if within is not None:
        deadline = clock.deadline
        if not clock.running or _breached(clock, now) or deadline is None:
            return False
        if deadline > now + within:
            return False
    return True


def _breached(clock: ClockRow, now: datetime) -> bool:
    """A running clock by its deadline (a breached one's is before the instant it was
    measured, so no later than now); any other as it stopped or paused."""
    return _overdue(clock, now) if clock.running else clock.state == "breached"


def _live_state(clock: ClockRow, now: datetime) -> str:
    """The clock's state at ``now``: a running clock past its deadline is breached."""
    if _breached(clock, now):
        return "breached"
    if clock.stopped_at is not None:
        return clock.state
    return "running" if clock.running else "paused"
