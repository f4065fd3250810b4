"""The read ports in PostgreSQL: gauges, one ticket's rows, a period's clocks and events."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import datetime, timedelta

from engine.store.postgres.database import Database, borrow
from engine.store.reads import ChannelBacklog, ClockGroup, GaugeCounts, StoredClock, TicketRows

# One scan of the clocks for open and this month's stopped ones. A clock still running
# past its deadline counts as breached now, whatever its last measurement said; at risk
# means past the first warning (a step below 1.0) and not breached. The four windows of
# ``breaching`` are $3 to $6: spelled out, so the statement is one text, never assembled.
GAUGE_CLOCKS = """
SELECT department, metric, agreement_kind,
       CASE WHEN stopped_at IS NOT NULL THEN state
            WHEN state = 'breached' OR (running AND deadline <= $1) THEN 'open_breached'
            WHEN running THEN 'open_running'
            ELSE 'open_paused' END AS bucket,
       count(*) AS clocks,
       count(*) FILTER (
           WHERE stopped_at IS NULL AND state <> 'breached'
             AND NOT (running AND deadline <= $1)
             AND cardinality(steps) > 0 AND steps[1] < 1
             AND CASE WHEN running THEN step_due_at[1] <= $1 ELSE fraction >= steps[1] END
       ) AS at_risk,
       ARRAY[
           count(*) FILTER (WHERE stopped_at IS NULL AND running AND deadline > $1
                            AND deadline <= $1 + $3::interval),
           count(*) FILTER (WHERE stopped_at IS NULL AND running AND deadline > $1
                            AND deadline <= $1 + $4::interval),
           count(*) FILTER (WHERE stopped_at IS NULL AND running AND deadline > $1
                            AND deadline <= $1 + $5::interval),
           count(*) FILTER (WHERE stopped_at IS NULL AND running AND deadline > $1
                            AND deadline <= $1 + $6::interval)
       ] AS breaching
FROM clocks
WHERE stopped_at IS NULL OR stopped_at >= $2
GROUP BY 1, 2, 3, 4
"""
GAUGE_WINDOWS = 4  # the windows GAUGE_CLOCKS counts
STEPS_DUE = "SELECT count(*) FROM clocks WHERE next_due_at <= $1"
OUTBOX_BACKLOG = """
SELECT channel,
       count(*) FILTER (WHERE status = 'pending') AS pending,
       min(created_at) FILTER (WHERE status = 'pending') AS oldest,
       count(*) FILTER (WHERE status = 'failed') AS failed
FROM outbox WHERE status <> 'sent' GROUP BY channel
"""
TICKET_AGREEMENTS = "SELECT agreements::text AS agreements FROM tickets WHERE ticket_id = $1"
TICKET_EVENTS = "SELECT payload::text AS payload FROM events WHERE ticket_id = $1"
TICKET_FIRED = """
SELECT clock_key, step, tier, due_at, fired_at, status
FROM escalation_steps WHERE ticket_id = $1 ORDER BY clock_key, step
"""
TICKETS_WITHOUT_STEPS = """
SELECT DISTINCT ticket_id FROM clocks WHERE cardinality(steps) = 0
AND ticket_id > $1 ORDER BY ticket_id LIMIT $2
"""
# Ordered so that equal inputs give equal reports (a group's most common target among
# equally common ones is the first met). The columns are StoredClock's, in its order.
PERIOD_CLOCKS = """
SELECT c.ticket_id, c.department, c.service, c.priority, c.metric, c.agreement_kind,
       c.function, c.state, c.running, c.deadline, c.elapsed_s, c.target_s
FROM tickets AS t JOIN clocks AS c USING (ticket_id)
WHERE t.created_at >= $1 AND t.created_at < $2 AND ($3::text IS NULL OR c.department = $3)
ORDER BY c.ticket_id, c.clock_key
"""
# Ordered as the clocks read a ticket's events (engine.sla_clock.timeline.order). The
# join goes through events_by_ticket; the sort of a year's events spills to disk on the
# server, which is where it belongs rather than in this process.
PERIOD_EVENTS = """
SELECT e.payload::text AS payload
FROM tickets AS t JOIN events AS e USING (ticket_id)
WHERE t.created_at >= $1 AND t.created_at < $2
ORDER BY e.occurred_at, e.event_id
"""
# Rows per round trip of a cursor: few enough to keep memory flat, enough that the
# round trips do not dominate a read of millions of rows.
PREFETCH_ROWS = 5_000


class PostgresReads:
    """The read ports on a pool (a connection per read) or on one connection of the caller's."""

    def __init__(self, source: Database, *, acquire_timeout_s: float = 10) -> None:
        self._source = source
        self._acquire_timeout_s = acquire_timeout_s

    async def gauge_counts(
        self, now: datetime, month_start: datetime, windows: Sequence[timedelta]
    ) -> GaugeCounts:
        """Open clocks and those stopped since ``month_start``, due steps and the outbox."""
        if len(windows) != GAUGE_WINDOWS:
            raise ValueError(f"{len(windows)} breach windows; the statement counts {GAUGE_WINDOWS}")
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            clocks = await connection.fetch(GAUGE_CLOCKS, now, month_start, *windows)
            due = await connection.fetchval(STEPS_DUE, now)
            outbox = await connection.fetch(OUTBOX_BACKLOG)
        groups = tuple(
            ClockGroup(
                department=row["department"],
                metric=row["metric"],
                agreement_kind=row["agreement_kind"],
                bucket=row["bucket"],
                clocks=row["clocks"],
                at_risk=row["at_risk"],
                breaching=tuple(row["breaching"]),
            )
            for row in clocks
        )
        backlogs = tuple(
            ChannelBacklog(row["channel"], row["pending"], row["oldest"], row["failed"])
            for row in outbox
        )
        return GaugeCounts(groups, due, backlogs)

    async def ticket(self, ticket_id: str) -> TicketRows | None:
        """The ticket's rows, read in one snapshot; None when no event of it was recorded."""
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            ticket = await connection.fetchrow(TICKET_AGREEMENTS, ticket_id)
            if ticket is None:
                return None
            payloads = await connection.fetch(TICKET_EVENTS, ticket_id)
            fired = await connection.fetch(TICKET_FIRED, ticket_id)
        return TicketRows(
            [row["payload"] for row in payloads],
            ticket["agreements"],
            [(row["clock_key"], row["step"], row["fired_at"], row["status"]) for row in fired],
        )

    async def tickets_without_steps(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` ids after ``after``, in order, of tickets with a stepless clock."""
        async with borrow(self._source, self._acquire_timeout_s) as connection:
            rows = await connection.fetch(TICKETS_WITHOUT_STEPS, after, limit)
        return [row["ticket_id"] for row in rows]

    async def clocks_of_period(
        self, start: datetime, end: datetime, department: str | None
    ) -> AsyncGenerator[StoredClock, None]:
        """Their clocks in ticket then clock key order, read in one snapshot."""
        # A server-side cursor lives in a transaction: one snapshot, a prefetch at a time.
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = connection.cursor(PERIOD_CLOCKS, start, end, department, prefetch=PREFETCH_ROWS)
            async for row in rows:
                yield StoredClock(*row)

    async def events_of_period(self, start: datetime, end: datetime) -> AsyncGenerator[str, None]:
        """All their events' JSON payloads, in occurred-at then event id order."""
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            async for row in connection.cursor(PERIOD_EVENTS, start, end, prefetch=PREFETCH_ROWS):
                yield row["payload"]
