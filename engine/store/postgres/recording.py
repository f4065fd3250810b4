"""The recording port in PostgreSQL: rows written through COPY into staging tables.

Rows are written through COPY into per-session staging tables, then merged with one
statement each: binary COPY costs this process a quarter of the CPU that the same rows
cost as unnest() arrays (asyncpg checks every array element for being a sub-array), and
this process's one core is what bounds intake.

The merges are prepared statements (asyncpg prepares every statement it runs), and after
five runs PostgreSQL may keep one generic plan, made without knowing how many rows the
staging table holds. On the 200,000-event benchmark the ticket update's time then grew
with the table, from 7 to 91 ms a batch, as if it read every ticket to update the few
thousand staged ones (planned afresh, it joins them through the primary key: about
10 ms). Planning each time costs a fraction of a millisecond. Hence force_custom_plan,
for the recording's transaction only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import cache
from uuid import UUID

from engine.events import TicketEvent
from engine.sla_clock.agreements import Agreement
from engine.store.connection import Connection
from engine.store.postgres.database import Database, borrow
from engine.store.postgres.steps import DUE_CHANNEL, fired_steps
from engine.store.recording import (
    CountedRating,
    FiredSteps,
    LockedTicket,
    MeasuredClock,
    MeasuredTicket,
    StepKey,
    StoppedClock,
)
from engine.vocabulary import Tier

CLOCK_COLUMNS = (
    "ticket_id",
    "clock_key",
    "metric",
    "agreement_kind",
    "agreement_key",
    "department",
    "service",
    "function",
    "priority",
    "calendar",
    "target_s",
    "state",
    "running",
    "elapsed_s",
    "fraction",
    "started_at",
    "stopped_at",
    "deadline",
    "next_due_at",
    "measured_at",
    "steps",
    "tiers",
    "step_due_at",
)
"""The columns of the clocks table, in the order of ``UPSERT_CLOCKS``."""

STAGING = """
SET LOCAL client_min_messages = warning;
SET LOCAL plan_cache_mode = force_custom_plan;
CREATE TEMP TABLE IF NOT EXISTS staged_events (
    event_id uuid, ticket_id text, type text, occurred_at timestamptz, payload jsonb
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS staged_tickets (
    ticket_id text, created_at timestamptz, department text, service text, priority text,
    status text, assigned_function text, agreement_kind text, agreements jsonb,
    clock_keys text[], event_count integer, closed_at timestamptz, assigned_team text
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
ADD_TICKETS = """
INSERT INTO tickets (ticket_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING
"""
LOCK_TICKETS = """
SELECT ticket_id, agreements::text AS agreements, clock_keys, event_count, feed_version
FROM tickets
WHERE ticket_id = ANY($1::text[])
ORDER BY ticket_id
FOR UPDATE
"""
CREATIONS = """
SELECT ticket_id, event_id FROM events
WHERE ticket_id = ANY($1::text[]) AND type = 'ticket.created'
"""
STORED = "SELECT event_id FROM events WHERE event_id = ANY($1::uuid[])"
ADD_EVENTS = """
INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)
SELECT * FROM staged_events
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""
EVENT_IDS = "SELECT ticket_id, event_id FROM events WHERE ticket_id = ANY($1::text[])"
PAYLOADS = "SELECT payload::text AS payload FROM events WHERE event_id = ANY($1::uuid[])"
# A ticket still waiting for its creation (no created_at staged) keeps what its row
# holds and counts its events; the snapshots staged are only those attached now.
# A measured ticket (one with created_at staged) has a new version of its clocks for the
# SLA feed: its feed_version goes up and its row in sla_feed asks for it to be published.
UPDATE_TICKETS = """
WITH updated AS (
    UPDATE tickets SET
        created_at = coalesce(u.created_at, tickets.created_at),
        department = coalesce(u.department, tickets.department),
        service = coalesce(u.service, tickets.service),
        priority = coalesce(u.priority, tickets.priority),
        status = coalesce(u.status, tickets.status),
        assigned_function = CASE WHEN u.created_at IS NULL THEN tickets.assigned_function
                            ELSE u.assigned_function END,
        assigned_team = CASE WHEN u.created_at IS NULL THEN tickets.assigned_team
                        ELSE u.assigned_team END,
        agreement_kind = coalesce(u.agreement_kind, tickets.agreement_kind),
        agreements = CASE WHEN u.agreements IS NULL THEN tickets.agreements
                     ELSE tickets.agreements || u.agreements END,
        clock_keys = coalesce(u.clock_keys, tickets.clock_keys),
        closed_at = CASE WHEN u.created_at IS NULL THEN tickets.closed_at ELSE u.closed_at END,
        event_count = u.event_count,
        feed_version = tickets.feed_version + (u.created_at IS NOT NULL)::int,
        updated_at = $1
    FROM staged_tickets AS u
    WHERE tickets.ticket_id = u.ticket_id
    RETURNING tickets.ticket_id, tickets.feed_version, u.created_at IS NOT NULL AS measured
)
INSERT INTO sla_feed (ticket_id, version, changed_at)
SELECT ticket_id, feed_version, $1 FROM updated WHERE measured
ON CONFLICT (ticket_id) DO UPDATE SET
    version = EXCLUDED.version, changed_at = EXCLUDED.changed_at, claimed_until = NULL
"""
# The steps travel as array literals, and their instants as epoch microseconds: COPY's
# binary arrays cost this process a check of every element, which the database can do
# on its own, idle, core instead. The deadline and next due instant travel as epoch
# microseconds too: making a datetime for COPY to take apart again costs this process.
# Every clock of a batch is measured at the same instant, the one parameter.
# It returns the clocks that it stopped: every sub-statement of a WITH sees the table as
# it was before the upsert, so ``before`` holds the previous stop (none for a new clock).
# A clock that the batch's events did not change (a running resolution clock when the
# ticket goes in progress, say) is not written again: a new row version, its WAL and its
# index entries for nothing. Its row stays as measured then; a running clock's elapsed_s
# and fraction are as of its measured_at, and nothing reads them as of any other instant.
# Not written, a row is not returned either: it stopped, if at all, in an earlier batch.
UPSERT_CLOCKS = """
WITH before AS (
    SELECT c.ticket_id, c.clock_key, c.stopped_at
    FROM clocks AS c JOIN staged_clocks AS s USING (ticket_id, clock_key)
    WHERE s.stopped_at IS NOT NULL
), written AS (
    INSERT INTO clocks (ticket_id, clock_key, metric, agreement_kind, agreement_key,
        department, service, function, priority, calendar, target_s, state, running,
        elapsed_s, fraction, started_at, stopped_at, deadline, next_due_at, measured_at,
        steps, tiers, step_due_at)
    SELECT ticket_id, clock_key, metric, agreement_kind, agreement_key,
        department, service, function, priority, calendar, target_s, state, running,
        elapsed_s, fraction, started_at, stopped_at,
        'epoch'::timestamptz + deadline_us * interval '1 microsecond',
        'epoch'::timestamptz + next_due_us * interval '1 microsecond',
        $1::timestamptz,
        steps::float8[], tiers::text[],
        ARRAY(SELECT 'epoch'::timestamptz + u * interval '1 microsecond'
              FROM unnest(step_due_us::bigint[]) WITH ORDINALITY AS d(u, n) ORDER BY n)
    FROM staged_clocks
    ON CONFLICT (ticket_id, clock_key) DO UPDATE SET
        metric = EXCLUDED.metric, agreement_kind = EXCLUDED.agreement_kind,
        agreement_key = EXCLUDED.agreement_key, department = EXCLUDED.department,
        service = EXCLUDED.service, function = EXCLUDED.function,
        priority = EXCLUDED.priority, calendar = EXCLUDED.calendar,
        target_s = EXCLUDED.target_s, state = EXCLUDED.state, running = EXCLUDED.running,
        elapsed_s = EXCLUDED.elapsed_s, fraction = EXCLUDED.fraction,
        started_at = EXCLUDED.started_at, stopped_at = EXCLUDED.stopped_at,
        deadline = EXCLUDED.deadline, next_due_at = EXCLUDED.next_due_at,
        measured_at = EXCLUDED.measured_at, steps = EXCLUDED.steps,
        tiers = EXCLUDED.tiers, step_due_at = EXCLUDED.step_due_at
    WHERE (clocks.metric, clocks.agreement_kind, clocks.agreement_key, clocks.department,
           clocks.service, clocks.function, clocks.priority, clocks.calendar,
           clocks.target_s, clocks.state, clocks.running, clocks.started_at,
           clocks.stopped_at, clocks.deadline, clocks.next_due_at, clocks.steps,
           clocks.tiers, clocks.step_due_at)
        IS DISTINCT FROM (EXCLUDED.metric, EXCLUDED.agreement_kind, EXCLUDED.agreement_key,
           EXCLUDED.department, EXCLUDED.service, EXCLUDED.function, EXCLUDED.priority,
           EXCLUDED.calendar, EXCLUDED.target_s, EXCLUDED.state, EXCLUDED.running,
           EXCLUDED.started_at, EXCLUDED.stopped_at, EXCLUDED.deadline,
           EXCLUDED.next_due_at, EXCLUDED.steps, EXCLUDED.tiers, EXCLUDED.step_due_at)
        OR (NOT EXCLUDED.running
            AND (clocks.elapsed_s, clocks.fraction)
                IS DISTINCT FROM (EXCLUDED.elapsed_s, EXCLUDED.fraction))
    RETURNING ticket_id, clock_key, metric, agreement_kind, elapsed_s, stopped_at
)
SELECT w.metric, w.agreement_kind, w.elapsed_s
FROM written AS w LEFT JOIN before AS b USING (ticket_id, clock_key)
WHERE w.stopped_at IS NOT NULL AND b.stopped_at IS NULL
"""
REMOVE_CLOCKS = """
DELETE FROM clocks USING unnest($1::text[], $2::text[]) AS g(ticket_id, clock_key)
WHERE clocks.ticket_id = g.ticket_id AND clocks.clock_key = g.clock_key
"""
KEEP_ONLY_CLOCKS = """
DELETE FROM clocks
WHERE ticket_id = ANY($1::text[])
    AND (ticket_id, clock_key) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""
SET_STEP_STATUS = """
UPDATE escalation_steps SET status = $4, superseded_at = $5
FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(ticket_id, clock_key, step)
WHERE escalation_steps.ticket_id = u.ticket_id
    AND escalation_steps.clock_key = u.clock_key AND escalation_steps.step = u.step
"""
NOTIFY_DUE = "SELECT pg_notify($1, $2)"
# Few rows (a batch's ratings), so arrays rather than COPY.
WRITE_RATINGS = """
INSERT INTO ratings (ticket_id, event_id, score, rated_at)
SELECT * FROM unnest($1::text[], $2::uuid[], $3::smallint[], $4::timestamptz[])
ON CONFLICT (ticket_id) DO UPDATE SET
    event_id = EXCLUDED.event_id, score = EXCLUDED.score, rated_at = EXCLUDED.rated_at
"""


class PostgresRecordingTransaction:
    """One batch on one connection inside its transaction, with its staging tables."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def add_tickets(self, ticket_ids: Sequence[str]) -> None:
        """Make a row for each ticket the store does not know yet."""
        await self._connection.execute(ADD_TICKETS, ticket_ids)

    async def lock_tickets(self, ticket_ids: Sequence[str]) -> list[LockedTicket]:
        """Lock the rows of the known tickets among these, in ticket order."""
        rows = await self._connection.fetch(LOCK_TICKETS, ticket_ids)
        return [
            LockedTicket(
                row["ticket_id"],
                row["agreements"],
                row["clock_keys"],
                row["event_count"],
                row["feed_version"],
            )
            for row in rows
        ]

    async def creations(self, ticket_ids: Sequence[str]) -> dict[str, UUID]:
        """The id of the stored ``ticket.created`` of each ticket that has one."""
        rows = await self._connection.fetch(CREATIONS, ticket_ids)
        return {row["ticket_id"]: row["event_id"] for row in rows}

    async def stored(self, event_ids: Sequence[UUID]) -> set[UUID]:
        """The ids among these that the store holds."""
        return {row["event_id"] for row in await self._connection.fetch(STORED, event_ids)}

    async def add_events(self, events: Sequence[tuple[TicketEvent, str]]) -> list[UUID]:
        """Store the events with their JSON text; the ids of those new to the store."""
        await self._connection.copy_records_to_table(
            "staged_events",
            records=[(e.event_id, e.ticket_id, e.type, e.occurred_at, text) for e, text in events],
        )
        return [row["event_id"] for row in await self._connection.fetch(ADD_EVENTS)]

    async def event_ids(self, ticket_ids: Sequence[str]) -> list[tuple[str, UUID]]:
        """Every stored event of these tickets, as (ticket, event id)."""
        rows = await self._connection.fetch(EVENT_IDS, ticket_ids)
        return [(row["ticket_id"], row["event_id"]) for row in rows]

    async def payloads(self, event_ids: Sequence[UUID]) -> list[str]:
        """The stored JSON text of these events."""
        return [row["payload"] for row in await self._connection.fetch(PAYLOADS, event_ids)]

    async def fired_steps(self, ticket_ids: Sequence[str]) -> FiredSteps:
        """Every step recorded for these tickets' clocks, with its standing."""
        return await fired_steps(self._connection, ticket_ids)

    async def write_tickets(self, tickets: Sequence[MeasuredTicket], now: datetime) -> None:
        """Write what the measurement says of each ticket, and its count of events."""
        await self._connection.copy_records_to_table(
            "staged_tickets", records=[ticket_row(ticket) for ticket in tickets]
        )
        await self._connection.execute(UPDATE_TICKETS, now)

    async def write_clocks(
        self, clocks: Sequence[MeasuredClock], now: datetime
    ) -> list[StoppedClock]:
        """Write the clocks as measured at ``now``; those that this write stopped."""
        await self._connection.copy_records_to_table(
            "staged_clocks", records=[clock_row(measured) for measured in clocks]
        )
        return [StoppedClock(*row) for row in await self._connection.fetch(UPSERT_CLOCKS, now)]

    async def remove_clocks(self, clocks: Sequence[tuple[str, str]]) -> None:
        """Remove clocks (ticket, clock key) that no longer apply."""
        await self._connection.execute(
            REMOVE_CLOCKS, [ticket for ticket, _ in clocks], [key for _, key in clocks]
        )

    async def keep_only_clocks(self, clocks: Mapping[str, Sequence[str]]) -> None:
        """Remove every clock of each ticket but those listed (by key) for it."""
        pairs = [(ticket_id, key) for ticket_id, keys in clocks.items() for key in keys]
        await self._connection.execute(
            KEEP_ONLY_CLOCKS, list(clocks), [t for t, _ in pairs], [k for _, k in pairs]
        )

    async def supersede_steps(self, steps: Sequence[StepKey], now: datetime) -> None:
        """Keep the steps in the record, marked superseded (their notices stay sent)."""
        await self._set_status(steps, "superseded", now)

    async def restore_steps(self, steps: Sequence[StepKey]) -> None:
        """Mark superseded steps fired again, as they were before."""
        await self._set_status(steps, "fired", None)

    async def _set_status(
        self, steps: Sequence[StepKey], status: str, superseded_at: datetime | None
    ) -> None:
        await self._connection.execute(
            SET_STEP_STATUS,
            [t for t, _, _ in steps],
            [k for _, k, _ in steps],
            [s for _, _, s in steps],
            status,
            superseded_at,
        )

    async def announce_due(self, at: datetime) -> None:
        """NOTIFY every scheduler, delivered at commit, of an earlier due instant."""
        await self._connection.execute(NOTIFY_DUE, DUE_CHANNEL, at.isoformat())

    async def write_ratings(self, ratings: Sequence[CountedRating]) -> None:
        """Keep each ticket's rating that counts, in place of any kept for it before."""
        await self._connection.execute(
            WRITE_RATINGS,
            [r.ticket_id for r in ratings],
            [r.event_id for r in ratings],
            [r.score for r in ratings],
            [r.rated_at for r in ratings],
        )


class PostgresRecordingStore:
    """The recording port on a pool (the daemon) or one connection (tests, tools)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresRecordingTransaction]:
        """One batch: commits on leaving, rolls back on an exception."""
        async with borrow(self._database) as connection, connection.transaction():
            # The staging tables, once per session, emptied at every commit.
            await connection.execute(STAGING)
            yield PostgresRecordingTransaction(connection)


def ticket_row(ticket: MeasuredTicket) -> tuple[object, ...]:
    """A row of ``staged_tickets``."""
    clocks = ticket.clocks
    if clocks is None:  # waiting for its creation, or unmeasurable: keep what is there
        return (ticket.ticket_id, *(None,) * 9, ticket.event_count, None, None)
    timeline = clocks.timeline
    sla = next((c for c in clocks.clocks if c.agreement.kind != "ola"), None)
    return (
        ticket.ticket_id,
        timeline.created_at,
        timeline.department,
        timeline.service,
        timeline.priority_at(None),
        timeline.status,
        timeline.assigned_function,
        sla.agreement.kind if sla is not None else None,
        _snapshots_text(ticket.new_agreements),
        [clock.key for clock in clocks.clocks],
        ticket.event_count,
        timeline.closed_at,
        timeline.assigned_team,
    )


def _snapshots_text(agreements: Mapping[str, Agreement]) -> str | None:
    """The JSON text of snapshots attached now; None when there are none."""
    if not agreements:
        return None
    parts = [f"{json.dumps(key)}: {_agreement_text(a)}" for key, a in agreements.items()]
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


@cache
def _steps_literals(steps: tuple[tuple[float, Tier], ...]) -> tuple[str, str]:
    """A policy's steps and tiers as array literals: the same for every clock under it."""
    fractions = ",".join(repr(fraction) for fraction, _tier in steps)
    tiers = ",".join(tier for _fraction, tier in steps)
    return f"{{{fractions}}}", f"{{{tiers}}}"


def clock_row(measured: MeasuredClock) -> tuple[object, ...]:
    """A row of ``staged_clocks``."""
    clock = measured.clock
    agreement = clock.agreement
    steps, tiers = _steps_literals(agreement.steps)
    due_us = clock.due_us[: len(agreement.steps)]
    due = ",".join(["NULL" if us is None else str(us) for us in due_us])
    return (
        measured.ticket_id,
        clock.key,
        clock.metric,
        agreement.kind,
        clock.agreement_key,
        agreement.department,
        agreement.service,
        agreement.function,
        clock.priority,
        agreement.calendar,
        clock.target.total_seconds(),
        clock.state,
        clock.running,
        clock.elapsed.total_seconds(),
        clock.fraction,
        clock.started_at,
        clock.stopped_at,
        clock.due_us[-1] if clock.running else None,  # the deadline
        measured.next_due_us,
        steps,
        tiers,
        f"{{{due}}}",
    )
