"""The SLA feed's port on the in-memory tables, answering as the PostgreSQL statements do."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from engine.store.feed import FeedClock, FeedTicket
from engine.store.memory.tables import ClockRow, Tables


class MemoryFeedStore:
    """The feed port on ``Tables``."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[FeedTicket]:
        """Claim up to ``limit`` unpublished versions and read their tickets' clocks."""
        async with self._tables.transaction() as tables:
            free = [
                row
                for row in tables.feed.values()
                if row.claimed_until is None or row.claimed_until <= now
            ]
            free.sort(key=lambda row: row.changed_at)
            claimed = free[:limit]
            for row in claimed:
                row.claimed_until = now + lease
            found = []
            for ticket_id, version in sorted((row.ticket_id, row.version) for row in claimed):
                ticket = tables.tickets.get(ticket_id)
                if ticket is None or ticket.feed_version != version:
                    continue  # as the join finds no row, or a newer version is waiting
                clocks = sorted(
                    (c for (t, _), c in tables.clocks.items() if t == ticket_id),
                    key=lambda c: c.clock_key,
                )
                found.append(
                    FeedTicket(
                        ticket_id,
                        ticket.feed_version,
                        ticket.department or "",
                        ticket.service or "",
                        ticket.priority or "",
                        ticket.status or "",
                        ticket.assigned_function,
                        tuple(_clock(clock) for clock in clocks),
                    )
                )
        return found

    async def settle(self, published: Sequence[tuple[str, int]]) -> None:
        """Remove the published versions' rows; newer ones stay."""
        async with self._tables.transaction() as tables:
            for ticket_id, version in published:
                row = tables.feed.get(ticket_id)
                if row is not None and row.version <= version:
                    del tables.feed[ticket_id]


def _clock(clock: ClockRow) -> FeedClock:
    return FeedClock(
        clock.clock_key, clock.metric, clock.agreement_kind, clock.agreement_key,
        clock.function, clock.priority, clock.state, clock.running, clock.target_s,
        clock.elapsed_s, clock.fraction, clock.started_at, clock.stopped_at, clock.deadline,
        clock.measured_at, tuple(clock.steps), tuple(clock.tiers), tuple(clock.step_due_at),
        clock.next_due_at,
    )  # fmt: skip
