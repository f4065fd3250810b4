"""One short transaction that fires the due steps of a batch of clocks.

The store claims the due clocks' tickets (never one another engine or intake holds);
here it is decided which of their steps fire, what their notices say, and when each
clock is due next. Each fired step is recorded with its notices in the same
transaction, and a step the store had recorded already does not fire again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from engine.escalation import FiredStep, due_steps, next_due
from engine.escalation.policy import BREACH
from engine.notify.compose import Composer
from engine.notify.notice import Notice
from engine.store.firing import ClockAdvance, DueClock, FiringStore, QueuedNotice

log = structlog.get_logger(__name__)
# A clock whose steps could not be worked out is looked at again after this.
_FAILED_CLOCK_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class Firing:
    """What one claim did: clocks claimed, steps fired, notices queued."""

    claimed: int
    fired: list[FiredStep]
    notices: int


async def fire_due(
    store: FiringStore,
    composer: Composer,
    now: datetime,
    limit: int,
    *,
    until: datetime | None = None,
) -> Firing:
    """Fire every due step of up to ``limit`` clocks, in one transaction.

    With ``until`` (before ``now``), only the steps due at or before it fire: the rest
    wait for intake to read the events that may still stop them.
    """
    until = now if until is None else min(until, now)
    async with store.transaction() as firing:
        locked = await firing.claim_due(until, limit)
        if not locked:
            return Firing(0, [], 0)
        tickets = sorted(set(locked))
        claimed = await firing.due_clocks(tickets, until)
        # Superseded steps count too: a step fires once per clock, ever.
        already = await firing.fired_steps(tickets)
        candidates: list[FiredStep] = []
        composed: dict[tuple[str, str, float], list[Notice]] = {}
        advance: list[ClockAdvance] = []
        for clock in claimed:
            key = (clock.ticket_id, clock.clock_key)
            try:
                steps = _due(clock, already.get(key, frozenset()), until, now)
                composed.update(
                    ((s.ticket_id, s.clock_key, s.step), composer.notices(s)) for s in steps
                )
            except Exception as exc:  # one bad clock must not stop the rest
                # Logged and looked at again later, rather than failing the transaction
                # for every clock in it and restarting the engine into the same row.
                log.exception(
                    "escalation.clock_failed", ticket_id=key[0], clock=key[1], error=repr(exc)
                )
                advance.append(ClockAdvance(*key, now + _FAILED_CLOCK_RETRY, False))
                continue
            candidates += steps
            passed = already.get(key, frozenset()) | {step.step for step in steps}
            breached = any(step.step >= BREACH for step in steps)
            later = next_due(clock.steps, clock.step_due_at, passed)
            advance.append(ClockAdvance(*key, later, breached))
        fired = await firing.record_steps(candidates)
        notices = [
            QueuedNotice(step.ticket_id, step.clock_key, step.step, notice)
            for step in fired
            for notice in composed[(step.ticket_id, step.clock_key, step.step)]
        ]
        await firing.enqueue_notices(notices, now)
        await firing.advance(advance)
    return Firing(len(locked), fired, len(notices))


def _due(
    clock: DueClock, fired: frozenset[float], until: datetime, now: datetime
) -> list[FiredStep]:
    """The steps of one claimed clock due by ``until``, fired at ``now``, with what their
    notices tell."""
    due = due_steps(clock.steps, clock.tiers, clock.step_due_at, fired, until)
    # The deadline in the notice: when the breach step falls (or fell) due.
    deadline = next(
        (at for s, at in zip(clock.steps, clock.step_due_at, strict=True) if s == BREACH),
        clock.deadline,
    )
    return [
        FiredStep(
            ticket_id=clock.ticket_id,
            clock_key=clock.clock_key,
            metric=clock.metric,
            agreement_kind=clock.agreement_kind,
            department=clock.department,
            service=clock.service,
            function=clock.function,
            priority=clock.priority,
            calendar=clock.calendar,
            target_s=clock.target_s,
            step=step.step,
            tier=step.tier,
            due_at=step.due_at,
            fired_at=now,
            deadline=deadline,
            known_at=clock.measured_at,
            assigned_function=clock.assigned_function,
            assigned_team=clock.assigned_team,
        )
        for step in due
    ]
