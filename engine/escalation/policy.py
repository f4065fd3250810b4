"""When a clock's escalation steps fire: each once, in the order they fall due.

A clock carries its steps (fractions of its target, each with a tier) and the instant
each falls due under its latest measurement. A step fires once its instant has come,
unless it already fired. A retargeted clock has new instants: the steps it has already
passed under the new target are due at once, the others at theirs, and a step that
fired never fires again, since steps are known by their fraction.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from engine.vocabulary import Tier

BREACH = 1.0
# A step firing this long after its due instant is news of the past (intake was taking a
# backlog, or its events arrived late): told in a catch-up digest, as a stopped clock's.
CATCH_UP_LATE = timedelta(minutes=15)
Instant = TypeVar("Instant", datetime, int)


@dataclass(frozen=True, slots=True)
class StepDue(Generic[Instant]):
    """A step whose instant has come, and the instant it fell due."""

    step: float
    tier: Tier
    due_at: Instant

    @property
    def is_breach(self) -> bool:
        """Whether this step is the breach itself (the target used up)."""
        return self.step == BREACH


def due_steps(
    steps: Sequence[float],
    tiers: Sequence[Tier],
    due_at: Sequence[Instant | None],
    fired: Collection[float],
    now: Instant,
) -> list[StepDue[Instant]]:
    """The steps not yet fired whose instant is at or before ``now``, earliest first.

    Instants are datetimes, or epoch microseconds where the caller counts in integers.
    """
    return [
        StepDue(step, tier, at) for at, step, tier in due_in_order(steps, tiers, due_at, fired, now)
    ]


def due_in_order(
    steps: Sequence[float],
    tiers: Sequence[Tier],
    due_at: Sequence[Instant | None],
    fired: Collection[float],
    now: Instant,
) -> list[tuple[Instant, float, Tier]]:
    """``due_steps`` as plain (instant, step, tier) tuples, for the simulator: it fires a
    year of steps, and a frozen dataclass costs about a microsecond to make."""
    if isinstance(now, datetime) and now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    due = [
        (at, step, tier)
        for step, tier, at in zip(steps, tiers, due_at, strict=True)
        if at is not None and at <= now and step not in fired
    ]
    due.sort()  # in the order of the tuples: by instant, then step (a clock's steps differ)
    return due


def next_due(
    steps: Sequence[float], due_at: Sequence[Instant | None], fired: Collection[float]
) -> Instant | None:
    """The earliest instant among the steps not yet fired; None when none has one.

    Instants are datetimes, or epoch microseconds where the caller counts in integers.
    """
    if not fired:  # most clocks: every step with an instant counts, at half the cost
        return min([at for at in due_at if at is not None], default=None)
    pending = [
        at for step, at in zip(steps, due_at, strict=True) if at is not None and step not in fired
    ]
    return min(pending, default=None)


def superseded(
    fired_at: Mapping[float, datetime],
    steps: Sequence[float],
    due_at: Sequence[datetime | None],
    late_events: Sequence[datetime],
) -> list[float]:
    """Fired steps that the clock, measured again, had not reached when they fired.

    Only an event that occurred before a step fired can undo it (a pause or stop that
    arrived late); a change that occurred afterwards leaves the firing as it was right.
    """
    now_due = dict(zip(steps, due_at, strict=True))
    undone = []
    for step, fired in fired_at.items():
        due = now_due.get(step)
        if (due is None or due > fired) and any(at < fired for at in late_events):
            undone.append(step)
    return sorted(undone)


def reinstated(
    fired_at: Mapping[float, datetime],
    steps: Sequence[float],
    due_at: Sequence[datetime | None],
) -> list[float]:
    """Superseded steps that the clock, measured again, had reached when they fired after all.

    Events that arrive late and out of order can undo a step and then restore it: a pause
    arrives, and the resume after it. ``fired_at`` maps each superseded step to the
    instant it fired; one whose instant under the new measurement is at or before then
    stands again (it fired once, and rightly; its notices went out then).
    """
    now_due = dict(zip(steps, due_at, strict=True))
    return sorted(
        step
        for step, fired in fired_at.items()
        if (due := now_due.get(step)) is not None and due <= fired
    )
