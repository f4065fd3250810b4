"""Whether intake has taken the backlog that waited at start, and what may fire meanwhile.

Pure: readings of the queue and of intake, and the instants, are passed in; the
adapter (``engine.intake.startup``) polls the broker. At start the scheduler waits
until the messages that were waiting in the queue have been recorded, or a bound has
passed, whichever comes first. After the bound, while that backlog is still being
taken, it fires only the steps due at or before the instant intake has read up to:
a step due later may yet be stopped by an event still in the queue. While that instant
lies more than ``CATCH_UP_LATE`` in the past, every step it lets fire is a catch-up
(news of the past, told in a digest), so none fires yet: firing them would take the
engine's time from intake, which is what brings the clocks up to date, and the steps
fire once the backlog is taken (or ``catch_up_hold_s`` after the wait's bound, so that
a queue that never empties holds them back no longer than that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal

from engine.escalation.policy import CATCH_UP_LATE

Outcome = Literal["drained", "bound"]
# The latest due instant to fire when nothing may fire: before every step.
NOTHING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class QueueReading:
    """The intake queue and this engine's intake at one instant."""

    at_s: float  # monotonic seconds
    waiting: int  # messages in the queue not delivered to any consumer yet
    received: int  # messages this engine's intake received since start
    settled: int  # of those, recorded, dead-lettered or sent back


@dataclass(frozen=True, slots=True)
class BacklogWait:
    """The start-up wait of one engine: each engine on a queue waits on its own."""

    started_s: float
    bound_s: float
    waiting_at_start: int | None  # None: the queue could not be read at start
    drained: bool = False
    seen_empty: bool = False  # the last reading found nothing waiting
    # What intake had received at the second reading in a row that found the queue
    # empty: once that much is settled, what waited at start is recorded.
    mark: int | None = None
    # After the bound, how much longer catch-up steps wait for the backlog to be taken.
    catch_up_hold_s: float = 0.0

    @classmethod
    def begin(
        cls, at_s: float, bound_s: float, waiting: int | None, catch_up_hold_s: float = 0.0
    ) -> BacklogWait:
        """The wait of an engine that found ``waiting`` messages before it consumed any."""
        # Nothing waiting, read before intake took anything: there is nothing to wait for.
        return cls(at_s, bound_s, waiting, drained=waiting == 0, catch_up_hold_s=catch_up_hold_s)

    def read(self, reading: QueueReading) -> BacklogWait:
        """The wait after ``reading``."""
        if self.drained:
            return self
        if reading.waiting > 0:
            return replace(self, seen_empty=False, mark=None)
        if not self.seen_empty:
            # Every message that waited has been delivered, to this engine or another;
            # those delivered to this one may still be on the wire until the next reading.
            return replace(self, seen_empty=True)
        mark = reading.received if self.mark is None else self.mark
        return replace(self, mark=mark, drained=reading.settled >= mark)

    def holds_catch_ups(self, at_s: float) -> bool:
        """Whether catch-up steps may still be held back at ``at_s`` while the backlog lasts."""
        return not self.drained and at_s - self.started_s < self.bound_s + self.catch_up_hold_s

    def outcome(self, at_s: float) -> Outcome | None:
        """Why the wait ends at ``at_s``; None while it goes on."""
        if self.drained:
            return "drained"
        if at_s - self.started_s >= self.bound_s:
            return "bound"
        return None


def fire_until(
    wait: BacklogWait, read_up_to: datetime | None, now: datetime, at_s: float | None = None
) -> datetime | None:
    """The latest due instant the scheduler may fire at ``now``; None: all that are due;
    ``NOTHING``: none yet.

    ``read_up_to`` is the instant intake has read the queue up to (events are queued
    roughly in the order they occur). While the start-up backlog is still being taken,
    a step due after it may be stopped by an event still in the queue, so it waits; once
    the backlog is taken, or before intake has recorded anything to go by, nothing is held.
    With ``at_s`` (monotonic seconds), a read point more than ``CATCH_UP_LATE`` old holds
    back every step, all catch-ups, while the wait still holds them (``holds_catch_ups``).
    """
    if wait.drained or read_up_to is None:
        return None
    until = min(read_up_to, now)
    if at_s is not None and now - until > CATCH_UP_LATE and wait.holds_catch_ups(at_s):
        return NOTHING
    return until


def read_up_to(before: datetime | None, batch: list[datetime]) -> datetime | None:
    """The instant intake has read up to, after a batch with events that occurred at ``batch``.

    A batch's earliest event, so that one event dated ahead does not carry the instant
    with it; never back, so that one late event does not hold every step behind it.
    """
    if not batch:
        return before
    earliest = min(batch)
    return earliest if before is None or earliest > before else before
