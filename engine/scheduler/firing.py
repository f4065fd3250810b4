"""One short transaction that fires the due steps of a batch of clocks.

The clocks whose next due instant has come are claimed through their tickets' rows with
``FOR UPDATE SKIP LOCKED``: the lock intake takes to re-measure a ticket, so a ticket is
never fired and re-measured at once, and several engines never claim the same ticket.
Each fired step is recorded with its notices in the outbox in the same transaction; the
step's primary key makes it fire once, whatever else happens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import structlog

from engine.escalation import FiredStep, due_steps, next_due
from engine.escalation.policy import BREACH
from engine.notify.compose import Composer
from engine.notify.notice import Notice
from engine.store.connection import Connection
from engine.store.steps import fired_steps

log = structlog.get_logger(__name__)
# A clock whose steps could not be worked out is looked at again after this.
_FAILED_CLOCK_RETRY = timedelta(minutes=1)

# The lock is taken on the tickets' rows, and the clocks are read afterwards in a
# statement of their own: under READ COMMITTED a locking join re-checks only the locked
# row, so clock columns read in the same statement could predate an intake commit that
# just stopped the clock, and fire a step it never reached.
_CLAIM = """
SELECT t.ticket_id
FROM clocks AS c JOIN tickets AS t ON t.ticket_id = c.ticket_id
WHERE c.next_due_at <= $1
ORDER BY c.next_due_at
LIMIT $2
FOR UPDATE OF t SKIP LOCKED
"""
_DUE_CLOCKS = """
SELECT ticket_id, clock_key, metric, agreement_kind, department, service, function,
       priority, calendar, target_s, deadline, steps, tiers, step_due_at, measured_at
FROM clocks
WHERE ticket_id = ANY($1::text[]) AND next_due_at <= $2
ORDER BY next_due_at
"""
_RECORD_STEPS = """
INSERT INTO escalation_steps (ticket_id, clock_key, step, tier, metric, agreement_kind,
    department, service, priority, target_s, due_at, fired_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::text[],
    $6::text[], $7::text[], $8::text[], $9::text[], $10::float8[], $11::timestamptz[],
    $12::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING ticket_id, clock_key, step
"""
_OUTBOX = """
INSERT INTO outbox (notice_id, ticket_id, clock_key, step, channel, recipient,
    recipient_name, subject, body, payload, created_at, next_attempt_at)
SELECT n.*, $11, $11 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::float8[],
    $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::jsonb[]) AS n
ON CONFLICT (notice_id) DO NOTHING
"""
_ADVANCE = """
UPDATE clocks SET next_due_at = u.next_due_at,
    state = CASE WHEN u.breached AND clocks.state = 'running' THEN 'breached'
            ELSE clocks.state END
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bool[])
    AS u(ticket_id, clock_key, next_due_at, breached)
WHERE clocks.ticket_id = u.ticket_id AND clocks.clock_key = u.clock_key
"""


@dataclass(frozen=True)
class Firing:
    """What one claim did: clocks claimed, steps fired, notices queued."""

    claimed: int
    fired: list[FiredStep]
    notices: int


async def fire_due(
    connection: Connection, composer: Composer, now: datetime, limit: int
) -> Firing:
    """Fire every due step of up to ``limit`` clocks, in one transaction."""
    async with connection.transaction():
        locked = await connection.fetch(_CLAIM, now, limit)
        if not locked:
            return Firing(0, [], 0)
        tickets = sorted({row["ticket_id"] for row in locked})
        claimed = await connection.fetch(_DUE_CLOCKS, tickets, now)
        recorded = await fired_steps(connection, tickets)
        # Superseded steps count too: a step fires once per clock, ever.
        already = {key: set(steps) for key, steps in recorded.items()}
        candidates: list[FiredStep] = []
        composed: dict[tuple[str, str, float], list[Notice]] = {}
        advance: list[tuple[str, str, datetime | None, bool]] = []
        for row in claimed:
            key = (row["ticket_id"], row["clock_key"])
            try:
                steps = _due(row, already.get(key, set()), now)
                composed.update(((s.ticket_id, s.clock_key, s.step), composer.notices(s))
                                for s in steps)  # fmt: skip
            except Exception as exc:  # one bad clock must not stop the rest
                # Logged and looked at again later, rather than failing the transaction
                # for every clock in it and restarting the engine into the same row.
                log.exception("escalation.clock_failed", ticket_id=key[0], clock=key[1],
                              error=repr(exc))  # fmt: skip
                advance.append((*key, now + _FAILED_CLOCK_RETRY, False))
                continue
            candidates += steps
            passed = already.get(key, set()) | {step.step for step in steps}
            breached = any(step.step >= BREACH for step in steps)
            advance.append((*key, next_due(row["steps"], row["step_due_at"], passed), breached))
        fired = await _record(connection, candidates)
        rows = [
            (n.notice_id, step.ticket_id, step.clock_key, step.step, n.channel, n.recipient,
             n.recipient_name, n.subject, n.body, json.dumps(n.payload, ensure_ascii=False))
            for step in fired
            for n in composed[(step.ticket_id, step.clock_key, step.step)]
        ]  # fmt: skip
        if rows:
            await connection.execute(_OUTBOX, *map(list, zip(*rows, strict=True)), now)
        if advance:
            await connection.execute(_ADVANCE, *map(list, zip(*advance, strict=True)))
    return Firing(len(locked), fired, len(rows))


def _due(row: asyncpg.Record, fired: set[float], now: datetime) -> list[FiredStep]:
    """The steps of one claimed clock to fire now, with what their notices tell."""
    due = due_steps(row["steps"], row["tiers"], row["step_due_at"], fired, now)
    # The deadline in the notice: when the breach step falls (or fell) due.
    deadline = next(
        (at for s, at in zip(row["steps"], row["step_due_at"], strict=True) if s == BREACH),
        row["deadline"],
    )
    return [
        FiredStep(
            ticket_id=row["ticket_id"], clock_key=row["clock_key"], metric=row["metric"],
            agreement_kind=row["agreement_kind"], department=row["department"],
            service=row["service"], function=row["function"], priority=row["priority"],
            calendar=row["calendar"], target_s=row["target_s"], step=step.step, tier=step.tier,
            due_at=step.due_at, fired_at=now, deadline=deadline,
            known_at=row["measured_at"],
        )
        for step in due
    ]  # fmt: skip


async def _record(connection: Connection, candidates: list[FiredStep]) -> list[FiredStep]:
    """Record the steps; those some other transaction recorded first are left out."""
    if not candidates:
        return []
    rows = await connection.fetch(
        _RECORD_STEPS,
        *map(list, zip(*(
            (s.ticket_id, s.clock_key, s.step, s.tier, s.metric, s.agreement_kind,
             s.department, s.service, s.priority, s.target_s, s.due_at, s.fired_at)
            for s in candidates
        ), strict=True)),
    )  # fmt: skip
    new = {(row["ticket_id"], row["clock_key"], row["step"]) for row in rows}
    return [s for s in candidates if (s.ticket_id, s.clock_key, s.step) in new]
