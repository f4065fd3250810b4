"""The firing port in PostgreSQL: due clocks claimed through their tickets' row locks.

The clocks whose next due instant has come are claimed through their tickets' rows with
``FOR UPDATE SKIP LOCKED``: the lock intake takes to re-measure a ticket, so a ticket is
never fired and re-measured at once, and several engines never claim the same ticket.
Each fired step is recorded with its notices in the outbox in the same transaction; the
step's primary key makes it fire once, whatever else happens.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg
import structlog

from engine.escalation import FiredStep
from engine.notify.budget import Window
from engine.store.connection import Connection, server_settings
from engine.store.firing import ClockAdvance, ClockId, DueClock, DueListener, QueuedNotice
from engine.store.outbox import BudgetKey, HeldNotice
from engine.store.postgres import digests
from engine.store.postgres.database import Database, borrow
from engine.store.postgres.steps import DUE_CHANNEL, fired_steps

# The lock is taken on the tickets' rows, and the clocks are read afterwards in a
# statement of their own: under READ COMMITTED a locking join re-checks only the locked
# row, so clock columns read in the same statement could predate an intake commit that
# just stopped the clock, and fire a step it never reached.
CLAIM_DUE = """
SELECT t.ticket_id
FROM clocks AS c JOIN tickets AS t ON t.ticket_id = c.ticket_id
WHERE c.next_due_at <= $1
ORDER BY c.next_due_at
LIMIT $2
FOR UPDATE OF t SKIP LOCKED
"""
# The ticket's row is read with its clocks for the assignment, the provider side of the
# steps' audience: locked by the claim, it is as intake last committed it.
DUE_CLOCKS = """
SELECT c.ticket_id, c.clock_key, c.metric, c.agreement_kind, c.department, c.service,
       c.function, c.priority, c.calendar, c.target_s, c.deadline, c.steps, c.tiers,
       c.step_due_at, c.measured_at, c.stopped_at, t.assigned_function, t.assigned_team
FROM clocks AS c JOIN tickets AS t ON t.ticket_id = c.ticket_id
WHERE c.ticket_id = ANY($1::text[]) AND c.next_due_at <= $2
ORDER BY c.next_due_at
"""
RECORD_STEPS = """
INSERT INTO escalation_steps (ticket_id, clock_key, step, tier, metric, agreement_kind,
    department, service, priority, target_s, due_at, fired_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::float8[], $11::timestamptz[],
    $12::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, clock_key, step
"""
ENQUEUE_NOTICES = """
INSERT INTO outbox (notice_id, ticket_id, clock_key, step, channel, recipient,
    recipient_name, subject, body, payload, created_at, next_attempt_at)
SELECT n.*, $11, $11 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[],
    $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[]) AS n
ON CONFLICT (notice_id) DO NOTHING
"""
ADVANCE = """
UPDATE clocks SET next_due_at = u.next_due_at,
    state = CASE WHEN u.breached AND clocks.state = 'running' THEN 'breached'
            ELSE clocks.state END
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[])
    AS u(ticket_id, clock_key, next_due_at, breached)
WHERE clocks.ticket_id = u.ticket_id AND clocks.clock_key = u.clock_key
"""
# Steps fired: each ticket has a new version of its clocks (their next steps) for the SLA
# feed, as in the recording's UPDATE_TICKETS.
FEED_CHANGED = """
WITH bumped AS (
    UPDATE tickets SET feed_version = feed_version + 1
    WHERE ticket_id = ANY($1::text[])
    RETURNING ticket_id, feed_version
)
INSERT INTO sla_feed (ticket_id, version, changed_at)
SELECT ticket_id, feed_version, now() FROM bumped
ON CONFLICT (ticket_id) DO UPDATE SET
    version = EXCLUDED.version, changed_at = EXCLUDED.changed_at, claimed_until = NULL
"""
EARLIEST_DUE = "SELECT min(next_due_at) FROM clocks WHERE next_due_at IS NOT NULL"

log = structlog.get_logger(__name__)


class PostgresFiringTransaction:
    """One firing on one connection inside its transaction."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def claim_due(self, now: datetime, limit: int) -> list[str]:
        """Lock the tickets of up to ``limit`` due clocks: a ticket id per clock claimed."""
        rows = await self._connection.fetch(CLAIM_DUE, now, limit)
        return [row["ticket_id"] for row in rows]

    async def due_clocks(self, tickets: Sequence[str], now: datetime) -> list[DueClock]:
        """The claimed tickets' clocks due at ``now``, earliest first."""
        rows = await self._connection.fetch(DUE_CLOCKS, list(tickets), now)
        return [
            DueClock(
                ticket_id=row["ticket_id"],
                clock_key=row["clock_key"],
                metric=row["metric"],
                agreement_kind=row["agreement_kind"],
                department=row["department"],
                service=row["service"],
                function=row["function"],
                priority=row["priority"],
                calendar=row["calendar"],
                target_s=row["target_s"],
                deadline=row["deadline"],
                steps=tuple(row["steps"]),
                tiers=tuple(row["tiers"]),
                step_due_at=tuple(row["step_due_at"]),
                measured_at=row["measured_at"],
                assigned_function=row["assigned_function"],
                assigned_team=row["assigned_team"],
                stopped_at=row["stopped_at"],
            )
            for row in rows
        ]

    async def fired_steps(self, tickets: Sequence[str]) -> Mapping[ClockId, frozenset[float]]:
        """Every step recorded for these tickets' clocks, superseded ones included."""
        found = await fired_steps(self._connection, tickets)
        return {key: frozenset(steps) for key, steps in found.items()}

    async def record_steps(self, steps: Sequence[FiredStep]) -> list[FiredStep]:
        """Record the steps; those recorded before (by anyone) are left out of the result."""
        if not steps:
            return []
        rows = [
            (
                s.ticket_id,
                s.clock_key,
                s.step,
                s.tier,
                s.metric,
                s.agreement_kind,
                s.department,
                s.service,
                s.priority,
                s.target_s,
                s.due_at,
                s.fired_at,
            )
            for s in steps
        ]
        recorded = await self._connection.fetch(RECORD_STEPS, *map(list, zip(*rows, strict=True)))
        new = {(row["ticket_id"], row["clock_key"], row["step"]) for row in recorded}
        return [s for s in steps if (s.ticket_id, s.clock_key, s.step) in new]

    async def enqueue_notices(self, notices: Sequence[QueuedNotice], now: datetime) -> None:
        """Put the notices in the outbox, due at ``now``; a notice id already there is kept."""
        if not notices:
            return
        rows = [
            (
                q.notice.notice_id,
                q.ticket_id,
                q.clock_key,
                q.step,
                q.notice.channel,
                q.notice.recipient,
                q.notice.recipient_name,
                q.notice.subject,
                q.notice.body,
                json.dumps(q.notice.payload, ensure_ascii=False),
            )
            for q in notices
        ]
        await self._connection.execute(ENQUEUE_NOTICES, *map(list, zip(*rows, strict=True)), now)

    async def budget_windows(self, keys: Sequence[BudgetKey]) -> dict[BudgetKey, Window]:
        """Lock these budgets until the transaction ends; where each stands (absent: quiet)."""
        return await digests.budget_windows(self._connection, keys)

    async def hold_notices(
        self,
        held: Sequence[HeldNotice],
        windows: Mapping[BudgetKey, Window],
        now: datetime,
        max_items: int = 500,
    ) -> None:
        """Append the held notices to their digests; save the budgets' windows."""
        await digests.hold_notices(self._connection, held, windows, now, max_items)

    async def advance(self, clocks: Sequence[ClockAdvance]) -> None:
        """Set the clocks' next due instants, and mark breached the running ones told to."""
        if not clocks:
            return
        rows = [(c.ticket_id, c.clock_key, c.next_due_at, c.breached) for c in clocks]
        await self._connection.execute(ADVANCE, *map(list, zip(*rows, strict=True)))
        tickets = sorted({c.ticket_id for c in clocks})  # locked already, in this order
        await self._connection.execute(FEED_CHANGED, tickets)


class PostgresDueListener:
    """A connection of its own that LISTENs on the due channel."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    def is_closed(self) -> bool:
        """Whether word can no longer arrive."""
        return self._connection.is_closed()

    async def close(self) -> None:
        """Stop listening."""
        await self._connection.close(timeout=5)


class PostgresFiringStore:
    """The firing port on a pool (or one connection); listening needs the database URL."""

    def __init__(self, database: Database, *, database_url: str | None = None) -> None:
        self._database = database
        self._database_url = database_url

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresFiringTransaction]:
        """One firing: commits on leaving, rolls back on an exception."""
        async with borrow(self._database) as connection, connection.transaction():
            yield PostgresFiringTransaction(connection)

    async def earliest_due(self) -> datetime | None:
        """The earliest next due instant of any clock; None when none is due ever."""
        async with borrow(self._database) as connection:
            earliest: datetime | None = await connection.fetchval(EARLIEST_DUE)
        return earliest

    async def listen(
        self,
        on_due: Callable[[datetime | None], None],
        on_lost: Callable[[DueListener], None],
    ) -> DueListener | None:
        """LISTEN on a connection of its own; None (and a warning) when it cannot now."""
        if self._database_url is None:
            raise RuntimeError("listening for due instants needs the database URL")

        def notified(_connection: Connection, _pid: int, _channel: str, payload: object) -> None:
            try:
                at = datetime.fromisoformat(str(payload))
            except ValueError:
                at = None  # not ours to judge: look anyway
            on_due(at)

        connection: asyncpg.Connection | None = None
        try:
            connection = await asyncpg.connect(
                self._database_url, server_settings=server_settings(self._database_url, "listen")
            )
            await connection.add_listener(DUE_CHANNEL, notified)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("scheduler.listen_failed", error=repr(exc))
            if connection is not None:
                connection.terminate()
            return None  # the caller tries again later; until then it looks periodically
        listener = PostgresDueListener(connection)
        connection.add_termination_listener(lambda _connection: on_lost(listener))
        return listener
