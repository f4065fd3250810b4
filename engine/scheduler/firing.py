"""One short transaction that fires the due steps of a batch of clocks.

The store claims the due clocks' tickets (never one another engine or intake holds);
here it is decided which of their steps fire, what their notices say, and when each
clock is due next. Each fired step is recorded with its notices in the same
transaction, and a step the store had recorded already does not fire again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from engine.escalation import FiredStep, due_steps, next_due
from engine.escalation.policy import BREACH, CATCH_UP_LATE
from engine.metrics import NOTICES_HELD
from engine.notify.budget import Held, Window, admit, bypasses, rule_for
from engine.notify.compose import Composer
from engine.notify.digest import DigestItem
from engine.notify.notice import Notice
from engine.store.firing import ClockAdvance, DueClock, FiringStore, QueuedNotice
from engine.store.outbox import BudgetKey, HeldNotice

log = structlog.get_logger(__name__)
# A clock whose steps could not be worked out is looked at again after this.
_FAILED_CLOCK_RETRY = timedelta(minutes=1)


@dataclass(frozen=True)
class Firing:
    """What one claim did: clocks claimed, steps fired, notices queued (and held)."""

    claimed: int
    fired: list[FiredStep]
    notices: int
    held: int = 0  # notices put into digests: over a budget, or of a catch-up


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
        catch_ups: set[tuple[str, str, float]] = set()
        advance: list[ClockAdvance] = []
        for clock in claimed:
            key = (clock.ticket_id, clock.clock_key)
            try:
                steps = _due(clock, already.get(key, frozenset()), until, now)
                for s in steps:
                    step_key = (s.ticket_id, s.clock_key, s.step)
                    if is_catch_up(clock, s, now):
                        catch_ups.add(step_key)
                    # A catch-up's notices go out only as digest items, written from the
                    # step when the digest is sent: they are addressed, not written.
                    composed[step_key] = composer.notices(s, written=step_key not in catch_ups)
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
        offered = [
            (step, notice)
            for step in fired
            for notice in composed[(step.ticket_id, step.clock_key, step.step)]
        ]
        budgets = composer.config.notices
        keys = [
            (n.channel, n.recipient)
            for step, n in offered
            if (step.ticket_id, step.clock_key, step.step) in catch_ups
            or rule_for(budgets, n.channel).max_messages is not None
        ]
        windows = await firing.budget_windows(keys)
        alone, held, changed = place(composer, offered, catch_ups, windows, now)
        await firing.enqueue_notices(alone, now)
        await firing.hold_notices(held, changed, now, budgets.digest_max_items)
        await firing.advance(advance)
    for notice in held:
        NOTICES_HELD.labels(notice.channel, "catch_up" if notice.item.catch_up else "budget").inc()
    return Firing(len(locked), fired, len(alone), len(held))


def is_catch_up(clock: DueClock, step: FiredStep, now: datetime) -> bool:
    """Whether a step fires as a catch-up: for a clock already stopped, or long after it
    fell due."""
    stopped = clock.stopped_at is not None and clock.stopped_at <= now
    return stopped or now - step.due_at > CATCH_UP_LATE


def place(
    composer: Composer,
    offered: Sequence[tuple[FiredStep, Notice]],
    catch_ups: Set[tuple[str, str, float]],
    windows: Mapping[BudgetKey, Window],
    now: datetime,
) -> tuple[list[QueuedNotice], list[HeldNotice], dict[BudgetKey, Window]]:
    """Which notices go out alone and which are held for digests, under the budgets.

    Offered in the order of their steps, so that the same firing decides the same way;
    returns the budgets' windows that changed.
    """
    config = composer.config.notices
    open_windows = dict(windows)
    changed: dict[BudgetKey, Window] = {}
    alone: list[QueuedNotice] = []
    held: list[HeldNotice] = []
    for step, notice in sorted(offered, key=lambda o: (o[0].ticket_id, o[0].clock_key, o[0].step)):
        key = (notice.channel, notice.recipient)
        catch_up = (step.ticket_id, step.clock_key, step.step) in catch_ups
        rule = rule_for(config, notice.channel)
        placed, window = admit(
            rule,
            open_windows.get(key),
            now,
            catch_up=catch_up,
            bypass=bypasses(config, state=step.state, tier=step.tier),
        )
        if window is not None and window != open_windows.get(key):
            open_windows[key] = changed[key] = window
        if isinstance(placed, Held):
            item = DigestItem.of(
                step,
                zone=_zone_name(composer, step.calendar),
                catch_up=catch_up,
                notice_id=notice.notice_id,
            )
            held.append(
                HeldNotice(
                    notice.channel,
                    notice.recipient,
                    notice.recipient_name,
                    notice.language,
                    placed.window_start,
                    placed.send_at,
                    item,
                )
            )
        else:
            alone.append(QueuedNotice(step.ticket_id, step.clock_key, step.step, notice))
    return alone, held, changed


def _zone_name(composer: Composer, calendar: str) -> str:
    """The time zone a step's local times are told in: its calendar's, else the default's."""
    calendars = composer.config.calendars
    entry = calendars.get(calendar) or calendars[composer.config.general_contract.default_calendar]
    return entry.zone.key


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
