"""The read ports in PostgreSQL: gauges, one ticket's rows, a period's clocks and events."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from engine.satisfaction import RatingCounts
from engine.store.postgres.database import Database, borrow
from engine.store.reads import (
    ChannelBacklog,
    ClockGroup,
    GaugeCounts,
    StoredClock,
    TicketRows,
    WorklistKey,
    WorklistQuery,
)

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
# The worklist (see WorklistQuery), read in the order it lists tickets so that a page
# costs a page's worth of index entries (migration 010), never a scan of the open clocks.
# The parameters every part shares: $1 now, $2 scope all, the clock filters ($3 metric,
# $8 state at $1, $10 breaching within), the ticket filters ($4 to $7, $11), $9 breached.
# A running clock is breached when its deadline has passed (a running clock measured
# breached has its deadline before the instant it was measured, so before now); any
# other clock when it stopped or paused breached. Ids compare byte-wise (COLLATE "C"), as
# Python's do. The statements are made once, here, from constant text.


def _breached(c: str) -> str:
    """Whether clock ``c`` is breached at $1."""
    return f"""(CASE WHEN {c}.running THEN coalesce({c}.deadline <= $1, false)
      ELSE {c}.state = 'breached' END)"""


def _chosen(c: str) -> str:
    """Whether clock ``c`` passes the clock filters."""
    return f"""($2::boolean OR {c}.stopped_at IS NULL)
  AND ($3::text IS NULL OR {c}.metric = $3)
  AND ($8::text IS NULL OR $8 = CASE WHEN {_breached(c)} THEN 'breached'
                                     WHEN {c}.stopped_at IS NOT NULL THEN {c}.state
                                     WHEN {c}.running THEN 'running' ELSE 'paused' END)
  AND ($10::interval IS NULL
       OR ({c}.running AND {c}.deadline > $1 AND {c}.deadline <= $1 + $10))"""


# Whether ticket ``t`` passes the ticket filters.
_TICKET = """($4::text IS NULL OR t.department = $4)
  AND ($5::text IS NULL OR t.service = $5)
  AND ($6::text IS NULL OR t.priority = $6)
  AND ($7::text IS NULL OR t.assigned_function = $7)
  AND ($11::text IS NULL OR t.assigned_team = $11)"""
# Whether one of the ticket's chosen clocks is breached, as $9 asks: a statement for each
# answer, so that the planner joins the test (an EXISTS under an OR stays a sub-plan,
# which it hashes over every clock when it expects many rows).
_BREACHED_EXISTS = f"""EXISTS (
    SELECT 1 FROM clocks AS b
    WHERE b.ticket_id = c.ticket_id AND {_chosen("b")} AND {_breached("b")})
"""
_BREACHED_FILTERS = {
    None: "$9::boolean IS NULL",
    True: "$9::boolean AND " + _BREACHED_EXISTS,
    False: "NOT $9::boolean AND NOT " + _BREACHED_EXISTS,
}


def _by_deadline(breached: str) -> str:
    """The tickets with a chosen running clock, by their next deadline: each ticket at its
    earliest chosen clock (no other chosen clock of it comes before), candidates within
    ($12, $13] and after the keyset ($14 deadline, $15 ticket id) when $14 is given."""
    return f"""
SELECT c.ticket_id, c.deadline AS next_deadline
FROM clocks AS c JOIN tickets AS t USING (ticket_id)
WHERE c.deadline IS NOT NULL
  AND ($12::timestamptz IS NULL OR c.deadline > $12)
  AND ($13::timestamptz IS NULL OR c.deadline <= $13)
  AND ($14::timestamptz IS NULL
       OR (c.deadline, c.ticket_id COLLATE "C") > ($14, $15::text COLLATE "C"))
  AND {_chosen("c")} AND {_TICKET}
  -- A running clock carries its ticket's current priority, department and service:
  -- the index passes over the others itself (migrations 011 and 012).
  AND ($6::text IS NULL OR c.priority = $6)
  AND ($4::text IS NULL OR c.department = $4)
  AND ($5::text IS NULL OR c.service = $5)
  AND NOT EXISTS (
      SELECT 1 FROM clocks AS e
      WHERE e.ticket_id = c.ticket_id AND e.deadline IS NOT NULL AND {_chosen("e")}
        AND (e.deadline, e.clock_key) < (c.deadline, c.clock_key))
  AND {breached}
ORDER BY c.deadline, c.ticket_id COLLATE "C"
LIMIT $16
"""


def _without_deadline(breached: str) -> str:
    """The tickets whose chosen clocks have no deadline (paused; stopped ones too with
    scope all), listed after every other, by id after $12; each at its first such clock."""
    return f"""
SELECT c.ticket_id, NULL::timestamptz AS next_deadline
FROM clocks AS c JOIN tickets AS t USING (ticket_id)
WHERE c.deadline IS NULL
  AND c.ticket_id COLLATE "C" > $12::text COLLATE "C"
  AND {_chosen("c")} AND {_TICKET}
  AND NOT EXISTS (
      SELECT 1 FROM clocks AS e
      WHERE e.ticket_id = c.ticket_id AND e.deadline IS NOT NULL AND {_chosen("e")})
  AND NOT EXISTS (
      SELECT 1 FROM clocks AS d
      WHERE d.ticket_id = c.ticket_id AND d.deadline IS NULL AND {_chosen("d")}
        AND d.clock_key < c.clock_key)
  AND {breached}
ORDER BY c.ticket_id COLLATE "C"
LIMIT $13
"""


WORKLIST_BY_DEADLINE = {b: _by_deadline(text) for b, text in _BREACHED_FILTERS.items()}
WORKLIST_WITHOUT_DEADLINE = {b: _without_deadline(text) for b, text in _BREACHED_FILTERS.items()}
# When the filters ask for breached tickets: those breached by a clock that is not
# running (paused or stopped breached), with their next deadline, where it is after $12
# or there is none (the overdue ones come from WORKLIST_BY_DEADLINE); after the keyset
# ($14 deadline, $15 ticket id) when $13.
WORKLIST_BREACHED_WAITING = f"""
WITH breached AS (
    SELECT DISTINCT c.ticket_id
    FROM clocks AS c JOIN tickets AS t USING (ticket_id)
    WHERE c.deadline IS NULL AND NOT c.running AND c.state = 'breached'
      AND {_chosen("c")} AND {_TICKET}
), keyed AS (
    SELECT c.ticket_id, (
        SELECT min(e.deadline) FROM clocks AS e
        WHERE e.ticket_id = c.ticket_id AND e.deadline IS NOT NULL AND {_chosen("e")}
    ) AS next_deadline
    FROM breached AS c
)
SELECT ticket_id, next_deadline FROM keyed
WHERE ($9::boolean IS NULL OR $9)  -- breached, or the state asked is
  AND (next_deadline IS NULL OR next_deadline > $12)
  AND (NOT $13 OR (coalesce(next_deadline, 'infinity'), ticket_id COLLATE "C")
                  > (coalesce($14::timestamptz, 'infinity'), $15::text COLLATE "C"))
ORDER BY coalesce(next_deadline, 'infinity'), ticket_id COLLATE "C"
LIMIT $16
"""
TICKETS_AGREEMENTS = """
SELECT ticket_id, agreements::text AS agreements FROM tickets WHERE ticket_id = ANY($1::text[])
"""
TICKETS_EVENTS = """
SELECT ticket_id, payload::text AS payload FROM events WHERE ticket_id = ANY($1::text[])
"""
TICKETS_FIRED = """
SELECT ticket_id, clock_key, step, fired_at, status
FROM escalation_steps WHERE ticket_id = ANY($1::text[]) ORDER BY ticket_id, clock_key, step
"""
# Ordered so that equal inputs give equal reports (a group's most common target among
# equally common ones is the first met). The columns are StoredClock's, in its order.
PERIOD_CLOCKS = """
SELECT c.ticket_id, c.department, c.service, c.priority, c.metric, c.agreement_kind,
       c.function, c.state, c.running, c.deadline, c.elapsed_s, c.target_s
FROM tickets AS t JOIN clocks AS c USING (ticket_id)
WHERE t.created_at >= $1 AND t.created_at < $2 AND ($3::text IS NULL OR c.department = $3)
  AND ($4::text IS NULL OR (c.agreement_kind = 'ola' AND c.function = $4))
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
# From the ratings (few) to their tickets by primary key; department and service are the
# ticket's as they stand, so a reclassification takes its rating along.
PERIOD_RATINGS = """
SELECT t.department, t.service,
       count(*) FILTER (WHERE r.score = 1) AS score_1,
       count(*) FILTER (WHERE r.score = 2) AS score_2,
       count(*) FILTER (WHERE r.score = 3) AS score_3,
       count(*) FILTER (WHERE r.score = 4) AS score_4,
       count(*) FILTER (WHERE r.score = 5) AS score_5
FROM ratings AS r JOIN tickets AS t USING (ticket_id)
WHERE t.created_at >= $1 AND t.created_at < $2 AND ($3::text IS NULL OR t.department = $3)
GROUP BY t.department, t.service
"""
# Rows per round trip of a cursor: few enough to keep memory flat, enough that the
# round trips do not dominate a read of millions of rows.
PREFETCH_ROWS = 5_000


@dataclass(frozen=True)
class WorklistPlan:
    """How a worklist query reads: first the tickets listed by a running clock's deadline
    (when ``by_deadline``: candidates' deadlines after ``lowest`` and at or before
    ``highest``, where given), then either the tickets without one or, when the query
    asks for breached tickets, those breached by a clock that is not running."""

    by_deadline: bool
    lowest: datetime | None
    highest: datetime | None
    breached_waiting: bool

    def in_deadline_part(self, after: WorklistKey) -> bool:
        """Whether the row ``after`` is one the deadline part lists."""
        deadline = after.next_deadline
        return deadline is not None and (self.highest is None or deadline <= self.highest)


def worklist_plan(query: WorklistQuery) -> WorklistPlan | None:
    """The plan of ``query``; None when no ticket can pass its filters."""
    now, state, breached = query.now, query.state, query.breached
    if state == "breached":
        if breached is False:
            return None
        breached = True  # every chosen clock is
    elif state is not None and breached is True:
        return None  # running, paused and met clocks are not breached
    lowest: datetime | None = None
    highest: datetime | None = None
    if state == "running" or breached is False or query.breaching_within is not None:
        lowest = now  # a clock due at or before now is breached
    if state == "breached" or breached is True:
        highest = now  # later, the breach is a clock's that is not running
    if query.breaching_within is not None:
        within = now + query.breaching_within
        highest = within if highest is None else min(highest, within)
    empty = lowest is not None and highest is not None and highest <= lowest
    by_deadline = state in (None, "running", "breached") and not empty
    return WorklistPlan(by_deadline, lowest, highest, breached_waiting=breached is True)


def _worklist_keys(rows: Sequence[asyncpg.Record]) -> list[WorklistKey]:
    return [WorklistKey(row["next_deadline"], row["ticket_id"]) for row in rows]


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

    async def worklist(self, query: WorklistQuery) -> list[WorklistKey]:
        """Up to ``query.limit`` tickets after ``query.after``, in worklist order."""
        plan = worklist_plan(query)
        if plan is None:
            return []
        after = query.after
        shared = (
            query.now,
            query.scope == "all",
            query.metric,
            query.department,
            query.service,
            query.priority,
            query.function,
            query.state,
            query.breached,
            query.breaching_within,
            query.team,
        )
        found: list[WorklistKey] = []
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            # Each statement planned for its values: a filter left out is then no
            # condition at all, and a deadline bound an index range. A page reads a few
            # hundred rows: compiling it (JIT, for the estimate of all rows) costs more.
            # No sort where an index gives the order: the planner estimates the
            # anti-joins at a row or so, and would sort them all rather than walk the
            # index and stop at the page's end (1.4 s instead of 20 ms, seen). No parallel
            # workers: starting them costs more than the page (a three-filter page took
            # 25 ms with two workers, 5 ms without, on a two-core machine).
            await connection.execute(
                "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL jit = off;"
                " SET LOCAL enable_sort = off; SET LOCAL max_parallel_workers_per_gather = 0"
            )
            if plan.by_deadline and (after is None or plan.in_deadline_part(after)):
                rows = await connection.fetch(
                    WORKLIST_BY_DEADLINE[query.breached],
                    *shared,
                    plan.lowest,
                    plan.highest,
                    None if after is None else after.next_deadline,
                    "" if after is None else after.ticket_id,
                    query.limit,
                )
                found += _worklist_keys(rows)
                after = None  # the rest starts at its beginning
            missing = query.limit - len(found)
            if missing <= 0:
                return found
            if plan.breached_waiting:
                # After the deadline part, or after a key of this part.
                rows = await connection.fetch(
                    WORKLIST_BREACHED_WAITING,
                    *shared,
                    plan.highest,
                    after is not None,
                    None if after is None else after.next_deadline,
                    "" if after is None else after.ticket_id,
                    missing,
                )
            else:
                # Every ticket without a deadline comes after every one with a deadline.
                rows = await connection.fetch(
                    WORKLIST_WITHOUT_DEADLINE[query.breached],
                    *shared,
                    "" if after is None or after.next_deadline is not None else after.ticket_id,
                    missing,
                )
        return found + _worklist_keys(rows)

    async def tickets(self, ticket_ids: Sequence[str]) -> dict[str, TicketRows]:
        """The rows of each ticket that has any, read in one snapshot."""
        ids = list(ticket_ids)
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            tickets = await connection.fetch(TICKETS_AGREEMENTS, ids)
            events = await connection.fetch(TICKETS_EVENTS, ids)
            fired = await connection.fetch(TICKETS_FIRED, ids)
        found = {row["ticket_id"]: TicketRows([], row["agreements"], []) for row in tickets}
        for row in events:
            found[row["ticket_id"]].payloads.append(row["payload"])
        for row in fired:
            found[row["ticket_id"]].fired.append(
                (row["clock_key"], row["step"], row["fired_at"], row["status"])
            )
        return found

    async def clocks_of_period(
        self, start: datetime, end: datetime, department: str | None, function: str | None = None
    ) -> AsyncGenerator[StoredClock, None]:
        """Their clocks in ticket then clock key order, read in one snapshot."""
        # A server-side cursor lives in a transaction: one snapshot, a prefetch at a time.
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            rows = connection.cursor(
                PERIOD_CLOCKS, start, end, department, function, prefetch=PREFETCH_ROWS
            )
            async for row in rows:
                yield StoredClock(*row)

    async def satisfaction_of_period(
        self, start: datetime, end: datetime, department: str | None = None
    ) -> list[RatingCounts]:
        """Rated tickets created in ``[start, end)`` counted by score, per department and
        service, in that order."""
        async with borrow(self._source, self._acquire_timeout_s) as connection:
            rows = await connection.fetch(PERIOD_RATINGS, start, end, department)
        counts = [
            RatingCounts(row[0], row[1], (row[2], row[3], row[4], row[5], row[6])) for row in rows
        ]
        # Ordered here, as Python orders text, rather than by the database's collation.
        return sorted(counts, key=lambda group: (group.department, group.service))

    async def events_of_period(self, start: datetime, end: datetime) -> AsyncGenerator[str, None]:
        """All their events' JSON payloads, in occurred-at then event id order."""
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            async for row in connection.cursor(PERIOD_EVENTS, start, end, prefetch=PREFETCH_ROWS):
                yield row["payload"]
