"""What the recorder needs of fired escalation steps: which fired, which a late event undid.

A clock's row carries its steps and the instant each falls due under its latest
measurement; ``next_due_at`` is the earliest of the steps not yet fired, which is what
the scheduler waits for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache

from engine.escalation import next_due, reinstated, superseded
from engine.sla_clock.clocks import Clock
from engine.store.connection import Connection
from engine.vocabulary import Tier

# NOTIFY channel that wakes schedulers when a batch sets an earlier due instant.
DUE_CHANNEL = "sla_engine_due"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

FiredSteps = Mapping[tuple[str, str], Mapping[float, tuple[datetime, bool]]]
"""Per (ticket, clock key): step -> (fired at, still standing, i.e. not superseded)."""


def instant(us: int | None) -> datetime | None:
    """A UTC datetime from epoch microseconds: cheaper than the calendar's zone-aware one."""
    return None if us is None else _EPOCH + timedelta(microseconds=us)


@cache
def _steps_literal(steps: tuple[tuple[float, Tier], ...]) -> tuple[tuple[float, ...], str, str]:
    """A policy's step fractions, and its steps and tiers as array literals: the same for
    every clock under it."""
    fractions = tuple(fraction for fraction, _tier in steps)
    tiers = ",".join(tier for _fraction, tier in steps)
    return fractions, f"{{{','.join(map(repr, fractions))}}}", f"{{{tiers}}}"


def step_literals(
    clock: Clock, fired: Mapping[float, tuple[datetime, bool]]
) -> tuple[str, str, str, int | None]:
    """The clock's steps, tiers and due instants (epoch microseconds) as array literals
    for the recorder's staging table, and its next due instant in epoch microseconds.
    """
    fractions, steps, tiers = _steps_literal(clock.agreement.steps)
    due_us = clock.due_us[: len(fractions)]
    due = ",".join(["NULL" if us is None else str(us) for us in due_us])
    return steps, tiers, f"{{{due}}}", next_due(fractions, due_us, fired)


async def fired_steps(connection: Connection, ticket_ids: Sequence[str]) -> FiredSteps:
    """Every step recorded for these tickets' clocks."""
    rows = await connection.fetch(
        "SELECT ticket_id, clock_key, step, fired_at, status FROM escalation_steps"
        " WHERE ticket_id = ANY($1::text[])",
        ticket_ids,
    )
    found: dict[tuple[str, str], dict[float, tuple[datetime, bool]]] = defaultdict(dict)
    for row in rows:
        found[(row["ticket_id"], row["clock_key"])][row["step"]] = (
            row["fired_at"],
            row["status"] == "fired",
        )
    return found


StepKey = tuple[str, str, float]  # ticket, clock key, step


def changed_steps(
    ticket_id: str,
    clock: Clock,
    fired: Mapping[float, tuple[datetime, bool]],
    late_events: Sequence[datetime],
) -> tuple[list[StepKey], list[StepKey]]:
    """The clock's fired steps whose standing the new measurement changes: those that
    events new in this batch show it had not reached (to supersede), and superseded ones
    it had reached by the time they fired after all (to restore)."""
    undone = {step: at for step, (at, ok) in fired.items() if not ok}
    if not undone and not late_events:  # the usual case: nothing can have changed
        return [], []
    standing = {step: at for step, (at, ok) in fired.items() if ok}
    steps = [fraction for fraction, _tier in clock.agreement.steps]
    due = [instant(us) for us in clock.due_us[: len(steps)]]
    return (
        [(ticket_id, clock.key, s) for s in superseded(standing, steps, due, late_events)],
        [(ticket_id, clock.key, s) for s in reinstated(undone, steps, due)],
    )


async def mark_standing(connection: Connection, restored: Sequence[StepKey]) -> None:
    """Mark restored steps fired again, as they were before a late event undid them."""
    await _set_status(connection, restored, "fired", None)


async def mark_superseded(connection: Connection, undone: Sequence[StepKey], now: datetime) -> None:
    """Keep the undone steps in the record, marked superseded (their notices stay sent)."""
    await _set_status(connection, undone, "superseded", now)


async def _set_status(
    connection: Connection,
    steps: Sequence[StepKey],
    status: str,
    superseded_at: datetime | None,
) -> None:
    await connection.execute(
        "UPDATE escalation_steps SET status = $4, superseded_at = $5"
        " FROM unnest($1::text[], $2::text[], $3::float8[]) AS u(ticket_id, clock_key, step)"
        " WHERE escalation_steps.ticket_id = u.ticket_id"
        " AND escalation_steps.clock_key = u.clock_key AND escalation_steps.step = u.step",
        [t for t, _, _ in steps],
        [k for _, k, _ in steps],
        [s for _, _, s in steps],
        status,
        superseded_at,
    )


async def wake_schedulers(connection: Connection, earliest_us: int) -> None:
    """Tell every scheduler, at commit, of the earliest due instant this batch wrote
    (in epoch microseconds)."""
    earliest = _EPOCH + timedelta(microseconds=earliest_us)
    await connection.execute("SELECT pg_notify($1, $2)", DUE_CHANNEL, earliest.isoformat())
