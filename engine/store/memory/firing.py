"""The firing port in memory, on ``Tables``: one firing at a time, so none is skipped."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from engine.escalation import FiredStep
from engine.notify.budget import Window
from engine.store.firing import ClockAdvance, ClockId, DueClock, DueListener, QueuedNotice
from engine.store.memory import digests
from engine.store.memory.tables import ClockRow, NoticeRow, StepRow, Tables
from engine.store.outbox import BudgetKey, HeldNotice


class MemoryFiringTransaction:
    """One firing inside a transaction of the tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables
        self._now: datetime | None = None  # the firing's instant, as now() in SQL

    def _due(self, now: datetime) -> list[ClockRow]:
        """Clocks of known tickets due at ``now``, earliest first (the join of the claim)."""
        due = [
            clock
            for clock in self._tables.clocks.values()
            if clock.next_due_at is not None
            and clock.next_due_at <= now
            and clock.ticket_id in self._tables.tickets
        ]
        return sorted(due, key=lambda clock: clock.next_due_at or now)

    async def claim_due(self, now: datetime, limit: int) -> list[str]:
        """Claim the tickets of up to ``limit`` due clocks: a ticket id per clock claimed."""
        self._now = now
        return [clock.ticket_id for clock in self._due(now)[:limit]]

    async def due_clocks(self, tickets: Sequence[str], now: datetime) -> list[DueClock]:
        """The claimed tickets' clocks due at ``now``, earliest first."""
        wanted = set(tickets)
        rows = self._tables.tickets  # _due keeps only the clocks of known tickets
        return [
            DueClock(
                ticket_id=c.ticket_id,
                clock_key=c.clock_key,
                metric=c.metric,  # type: ignore[arg-type]
                agreement_kind=c.agreement_kind,  # type: ignore[arg-type]
                department=c.department,
                service=c.service,
                function=c.function,  # type: ignore[arg-type]
                priority=c.priority,  # type: ignore[arg-type]
                calendar=c.calendar,
                target_s=c.target_s,
                deadline=c.deadline,
                steps=tuple(c.steps),
                tiers=tuple(c.tiers),  # type: ignore[arg-type]
                step_due_at=tuple(c.step_due_at),
                measured_at=c.measured_at,
                assigned_function=rows[c.ticket_id].assigned_function,  # type: ignore[arg-type]
                assigned_team=rows[c.ticket_id].assigned_team,
                stopped_at=c.stopped_at,
            )
            for c in self._due(now)
            if c.ticket_id in wanted
        ]

    async def fired_steps(self, tickets: Sequence[str]) -> Mapping[ClockId, frozenset[float]]:
        """Every step recorded for these tickets' clocks, superseded ones included."""
        wanted = set(tickets)
        found: dict[ClockId, set[float]] = {}
        for ticket_id, clock_key, step in self._tables.steps:
            if ticket_id in wanted:
                found.setdefault((ticket_id, clock_key), set()).add(step)
        return {key: frozenset(steps) for key, steps in found.items()}

    async def record_steps(self, steps: Sequence[FiredStep]) -> list[FiredStep]:
        """Record the steps; those recorded before are left out of the result."""
        recorded: list[FiredStep] = []
        for s in steps:
            key = (s.ticket_id, s.clock_key, s.step)
            if key in self._tables.steps:
                continue
            self._tables.steps[key] = StepRow(
                ticket_id=s.ticket_id,
                clock_key=s.clock_key,
                step=s.step,
                tier=s.tier,
                metric=s.metric,
                agreement_kind=s.agreement_kind,
                department=s.department,
                service=s.service,
                priority=s.priority,
                target_s=s.target_s,
                due_at=s.due_at,
                fired_at=s.fired_at,
            )
            recorded.append(s)
        return recorded

    async def enqueue_notices(self, notices: Sequence[QueuedNotice], now: datetime) -> None:
        """Put the notices in the outbox, due at ``now``; a notice id already there is kept."""
        for q in notices:
            n = q.notice
            if n.notice_id in self._tables.outbox:
                continue
            self._tables.outbox[n.notice_id] = NoticeRow(
                notice_id=n.notice_id,
                ticket_id=q.ticket_id,
                clock_key=q.clock_key,
                step=q.step,
                channel=n.channel,
                recipient=n.recipient,
                recipient_name=n.recipient_name,
                subject=n.subject,
                body=n.body,
                payload=copy.deepcopy(n.payload),
                created_at=now,
                next_attempt_at=now,
            )

    async def budget_windows(self, keys: Sequence[BudgetKey]) -> dict[BudgetKey, Window]:
        """Where these budgets stand (absent: quiet); the transaction is the lock."""
        return digests.budget_windows(self._tables, keys)

    async def hold_notices(
        self,
        held: Sequence[HeldNotice],
        windows: Mapping[BudgetKey, Window],
        now: datetime,
        max_items: int = 500,
    ) -> None:
        """Append the held notices to their digests; save the budgets' windows."""
        digests.hold_notices(self._tables, held, windows, now, max_items)

    async def advance(self, clocks: Sequence[ClockAdvance]) -> None:
        """Set the clocks' next due instants, and mark breached the running ones told to."""
        for a in clocks:
            clock = self._tables.clocks.get((a.ticket_id, a.clock_key))
            if clock is None:
                continue  # removed meanwhile: as an UPDATE that matches no row
            clock.next_due_at = a.next_due_at
            if a.breached and clock.state == "running":
                clock.state = "breached"
        for ticket_id in sorted({a.ticket_id for a in clocks}):
            if ticket_id in self._tables.tickets and self._now is not None:
                self._tables.feed_changed(ticket_id, self._now)


class MemoryDueListener:
    """A listener registered on the tables."""

    def __init__(self, tables: Tables, on_due: Callable[[datetime | None], None]) -> None:
        self._tables = tables
        self._on_due = on_due
        self._closed = False

    def is_closed(self) -> bool:
        """Whether word can no longer arrive."""
        return self._closed

    async def close(self) -> None:
        """Stop listening."""
        if not self._closed:
            self._closed = True
            self._tables.due_listeners.remove(self._on_due)


class MemoryFiringStore:
    """The firing port on in-memory tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryFiringTransaction]:
        """One firing: kept on leaving, undone on an exception."""
        async with self._tables.transaction() as tables:
            yield MemoryFiringTransaction(tables)

    async def earliest_due(self) -> datetime | None:
        """The earliest next due instant of any clock; None when none is due ever."""
        due = [c.next_due_at for c in self._tables.clocks.values() if c.next_due_at is not None]
        return min(due, default=None)

    async def listen(
        self,
        on_due: Callable[[datetime | None], None],
        on_lost: Callable[[DueListener], None],
    ) -> DueListener | None:
        """Hear ``Tables.announce_due``; in memory listening is never lost."""
        self._tables.due_listeners.append(on_due)
        return MemoryDueListener(self._tables, on_due)
