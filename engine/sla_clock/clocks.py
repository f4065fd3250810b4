"""A ticket's SLA and OLA clocks, measured in business time from its events.

Pure: the events, the agreements already attached, the calendars and the instant to
measure at all come in as arguments. ``ticket_clocks`` is a function of the events as a
set, so out-of-order and late events give the same clocks as in-order ones.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Literal, NamedTuple

from engine.business_time.calendar import BusinessCalendar, to_us
from engine.business_time.wall_time import MICROSECOND
from engine.events import TicketEvent
from engine.sla_clock.agreements import Agreement
from engine.sla_clock.timeline import PriorityOf, Reading, Run, Timeline
from engine.vocabulary import Metric, Priority, ProviderFunction, Tier

ClockState = Literal["running", "paused", "met", "breached"]


@dataclass(frozen=True, slots=True)
class Threshold:
    """An escalation step of a clock and the instant business time reaches it.

    ``due_at`` is None while the clock is paused or stopped short of the step.
    """

    fraction: float
    tier: Tier
    due_at: datetime | None


class Clock(NamedTuple):
    """One clock of a ticket, measured at ``as_of``.

    A named tuple, immutable as a frozen dataclass is, and made in a third of the time:
    every event measures each clock of its ticket again, and the simulator measures a
    year of them.
    """

    key: str
    metric: Metric
    agreement: Agreement
    agreement_key: str
    priority: Priority
    target: timedelta
    started_at: datetime
    stopped_at: datetime | None
    running: bool
    state: ClockState
    elapsed: timedelta
    fraction: float
    as_of: datetime
    calendar: BusinessCalendar
    # When each escalation step falls due and, last, the deadline, in epoch microseconds;
    # turned into datetimes only when asked for, as most measurements only store one.
    due_us: tuple[int | None, ...]

    @property
    def deadline(self) -> datetime | None:
        """When the target is reached, while the clock runs."""
        due = self.due_us[-1]
        return self.calendar.instant(due) if self.running and due is not None else None

    @property
    def thresholds(self) -> tuple[Threshold, ...]:
        """Each escalation step with the instant it falls due."""
        return tuple(
            Threshold(fraction, tier, None if due is None else self.calendar.instant(due))
            for (fraction, tier), due in zip(self.agreement.steps, self.due_us, strict=False)
        )

    @property
    def first_due(self) -> datetime | None:
        """The instant of the first escalation step that falls due, if one does."""
        due = next((us for us in self.due_us[:-1] if us is not None), None)
        return None if due is None else self.calendar.instant(due)

    def ahead(self) -> tuple[Threshold, ...]:
        """The thresholds still ahead of ``as_of``."""
        return tuple(t for t in self.thresholds if t.due_at is not None and t.due_at > self.as_of)


@dataclass(frozen=True, slots=True)
class TicketClocks:
    """Everything the events say about a ticket, with its clocks."""

    timeline: Timeline
    # Every clock, except update cycles that had ended before the reading this
    # measurement read on from was measured (``complete`` is False then): those never
    # change again, and that measurement held them. The current cycle is always here.
    clocks: tuple[Clock, ...]
    agreements: Mapping[str, Agreement]  # every snapshot the clocks use, by agreement key
    reading: Reading  # the events read, to read later ones on from (see Reading.extended)
    complete: bool = True  # whether ``clocks`` holds every clock of the ticket


# (department, service, the ticket's creation): the versions in force then are attached.
AttachSla = Callable[[str, str, datetime], Agreement]
AttachOla = Callable[[ProviderFunction, str, str, datetime], Agreement | None]
CalendarOf = Callable[[str, bool], BusinessCalendar]


def sla_key(department: str, service: str) -> str:
    """The key under which a ticket keeps the snapshot of a department's SLA for a service."""
    return f"sla:{department}:{service}"


def ola_key(function: str, department: str, service: str) -> str:
    """The key under which a ticket keeps the snapshot of a function's OLA.

    The snapshot takes the calendar and steps of the ticket's department and service, so
    it is kept per department and service: after a reclassification the OLA attaches
    anew, whatever order the assignment and the reclassification arrived in.
    """
    return f"ola:{function}:{department}:{service}"


def ticket_clocks(
    events: Iterable[TicketEvent],
    *,
    attached: Mapping[str, Agreement],
    attach_sla: AttachSla,
    attach_ola: AttachOla,
    calendar_of: CalendarOf,
    priority_of: PriorityOf,
    as_of: datetime,
) -> TicketClocks | None:
    """Measure a ticket's clocks at ``as_of``; None until its ``ticket.created`` is known.

    Snapshots in ``attached`` are reused; missing ones are attached through the
    ``attach_*`` functions and returned in ``TicketClocks.agreements`` to be kept.
    """
    reading = Reading.of(events, priority_of)
    if reading is None:
        return None
    return reading_clocks(
        reading,
        attached=attached,
        attach_sla=attach_sla,
        attach_ola=attach_ola,
        calendar_of=calendar_of,
        as_of=as_of,
    )


def reading_clocks(
    reading: Reading,
    *,
    attached: Mapping[str, Agreement],
    attach_sla: AttachSla,
    attach_ola: AttachOla,
    calendar_of: CalendarOf,
    as_of: datetime,
) -> TicketClocks:
    """Measure the clocks of a ticket's timeline as read so far, as ``ticket_clocks`` does."""
    timeline = reading.timeline
    department, service, created_at = timeline.department, timeline.service, timeline.created_at
    as_of_us = reading.measured_us = to_us(as_of)
    sla_id = sla_key(department, service)
    sla = attached.get(sla_id) or attach_sla(department, service, created_at)
    agreements: dict[str, Agreement] = {sla_id: sla}
    # Each agreement a run measures under, with its key and calendar, found once per
    # measurement: a ticket's runs share a handful (the SLA, an OLA per function).
    terms: dict[ProviderFunction | None, _Terms | None] = {
        None: (sla, sla_id, calendar_of(sla.calendar, sla.batch))
    }
    clocks = []
    cycles = reading.new_cycles
    if cycles and not _measures_updates(sla, timeline):
        cycles = []  # the SLA sets no update target at any priority the ticket had
    kept = reading.kept
    for run in chain(timeline.runs, cycles) if cycles else timeline.runs:
        function = run.function
        if function in terms:
            found = terms[function]
        else:
            assert function is not None  # the SLA's terms are there from the start
            key = ola_key(function, department, service)
            ola = attached.get(key) or attach_ola(function, department, service, created_at)
            if ola is not None:
                agreements[key] = ola
            found = terms[function] = (
                None if ola is None else (ola, key, calendar_of(ola.calendar, ola.batch))
            )
        if found is None:
            continue  # the function has no OLA: nothing to measure
        if kept and run.key in kept:
            continue  # stopped as it was when last measured (see Reading.kept)
        agreement, key, calendar = found
        # A clock that has not stopped takes the ticket's current priority, as the
        # ticket's row does, and the recorder measures every open clock again at each
        # event of its ticket: the worklist reads one priority along the clocks' own
        # column (migration 011) and relies on both.
        priority = timeline.priority_at(run.stopped_at)
        seconds = agreement.targets_s.get(priority, _NO_TARGETS).get(run.metric)
        if seconds is None or seconds <= 0:
            continue  # the agreement sets no target for this metric
        clocks.append(_measure(run, agreement, key, priority, seconds, calendar, as_of, as_of_us))
    return TicketClocks(timeline, tuple(clocks), agreements, reading, reading.complete)


# An agreement, the key its snapshot is kept under, and its calendar.
_Terms = tuple[Agreement, str, BusinessCalendar]


def _measures_updates(sla: Agreement, timeline: Timeline) -> bool:
    """Whether some update cycle of the ticket can have a target: cycles measure under
    the SLA, at a priority the ticket had. Most agreements set update targets for a few
    priorities only, and a ticket's cycles outnumber its other clocks."""
    targets = sla.targets_s
    return any(
        targets.get(priority, _NO_TARGETS).get("update", 0) > 0
        for _since, priority in timeline.priorities
    )


_NO_TARGETS: Mapping[Metric, int] = {}
_NONE_CLOSED = (0,)  # the sums of a run with no closed segment
_make_tuple = tuple.__new__


@lru_cache(maxsize=4096)
def _target(seconds: int) -> timedelta:
    """A target in seconds as a timedelta: agreements share a handful of them."""
    return timedelta(seconds=seconds)


@lru_cache(maxsize=4096)
def _needs(fractions: tuple[float, ...], target_us: int) -> tuple[int, ...]:
    """Business time each step needs, and the target last: the same for every clock of a
    policy and target, so made once for them."""
    return (*(round(target_us * fraction) for fraction in fractions), target_us)


def _measure(
    run: Run,
    agreement: Agreement,
    agreement_key: str,
    priority: Priority,
    target_s: int,
    calendar: BusinessCalendar,
    as_of: datetime,
    as_of_us: int,
) -> Clock:
    # Integer microseconds throughout: this runs for every clock of every ticket an event
    # touches. Business time each step needs, and the target itself last: the deadline.
    target_us = target_s * 1_000_000
    target = _target(target_s)
    needs = _needs(agreement.fractions, target_us)
    bounds = run.shared  # [start, end, start, end, ...], an odd number while running
    if len(bounds) != run.size:
        bounds = run.bounds_us  # a copy read on from this run: its own part
    closed = len(bounds) // 2  # segments closed; one more is open while the run runs
    sums: Sequence[int] | None
    if closed <= 1:  # most clocks: summed on the spot, cheaper than kept
        sums = (0, calendar.elapsed_us(bounds[0], bounds[1])) if closed else _NONE_CLOSED
    else:
        sums = None if run.sums is None else run.sums.get(calendar)
        if sums is None or len(sums) != closed + 1:
            sums = _closed_sums(run, calendar)
    spent = sums[-1]  # business time in the closed segments
    running = len(bounds) % 2 == 1
    open_us = bounds[-1] if running else None
    size = len(bounds)
    memo = run.due
    if memo is not None and memo[1] == size and run.due_calendar is calendar and memo[0] == needs:
        due_us = memo[2]  # measured before, and not moved since: the same instants
    else:
        due_us = _due(calendar, needs, bounds, sums, spent, open_us)
        run.due, run.due_calendar = (needs, size, due_us), calendar
    # Business time up to as_of: the closed segments that ended by then, and the part of
    # the next one (closed or open) before it; the later ones start after it.
    ended = not closed or bounds[2 * closed - 1] <= as_of_us  # the usual case
    before = closed if ended else _ended(bounds, as_of_us)
    elapsed_us = sums[before]
    if 2 * before < len(bounds):
        end_us = bounds[2 * before + 1] if 2 * before + 1 < len(bounds) else as_of_us
        elapsed_us += calendar.elapsed_us(bounds[2 * before], min(end_us, as_of_us))
    stopped_at = run.stopped_at
    # Ending exactly on the deadline meets the target; running up to it breaches it. A
    # clock stopped later than its deadline while no business time passed (the calendar
    # closed after it) had reached the target running: its breach step fired. (The stop
    # instant is converted only for a clock that used up its target exactly: rarely.)
    deadline_us = due_us[-1]
    state: ClockState
    if elapsed_us > target_us or (
        elapsed_us == target_us
        and (stopped_at is None or (deadline_us is not None and to_us(stopped_at) > deadline_us))
    ):
        state = "breached"
    elif stopped_at is not None:
        state = "met"
    else:
        state = "running" if running else "paused"
    # The fields in their order, made with tuple.__new__ in C: a named tuple's own
    # __new__ is Python code, and a year's simulation measures hundreds of thousands.
    return _make_tuple(
        Clock,
        (
            run.key,
            run.metric,
            agreement,
            agreement_key,
            priority,
            target,
            run.started_at,
            stopped_at,
            running,
            state,
            MICROSECOND * elapsed_us,  # elapsed
            elapsed_us / target_us,  # fraction
            as_of,
            calendar,
            due_us,
        ),
    )


def _due(
    calendar: BusinessCalendar,
    needs: tuple[int, ...],
    bounds: Sequence[int],
    sums: Sequence[int],
    spent: int,
    open_us: int | None,
) -> tuple[int | None, ...]:
    """When each step and, last, the target fall due (None: no instant they do)."""
    due: Sequence[int | None]
    if open_us is not None and not spent:  # the usual case: it all lies ahead
        due = calendar.add_each_us(open_us, needs)
        if 0 in needs:  # a step that needs no time: no time passed reaches it either
            due = [None if need == 0 else us for need, us in zip(needs, due, strict=True)]
        return tuple(due)
    # A step the closed segments reached falls in the first whose sum reaches it (none
    # for a step that needs no time at all: no time passed reaches it either).
    add_us = calendar.add_us
    reached: list[int | None] = []
    for need in needs:
        if need <= spent:
            i = bisect_left(sums, need)
            reached.append(add_us(bounds[2 * i - 2], need - sums[i - 1]) if i else None)
        elif open_us is not None:
            reached.append(add_us(open_us, need - spent))
        else:  # not running: no instant it falls due at
            reached.append(None)
    return tuple(reached)


def _ended(bounds: list[int], at_us: int) -> int:
    """How many of the segments in ``bounds`` had ended by ``at_us`` (a bisection)."""
    lo, hi = 0, len(bounds) // 2
    while lo < hi:
        mid = (lo + hi) // 2
        if at_us < bounds[2 * mid + 1]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _closed_sums(run: Run, calendar: BusinessCalendar) -> list[int]:
    """The run's closed segments' business time summed, [0, first, first + second, ...],
    brought up to date with the segments closed since it was last asked.

    A copy of the run may share the list (see Run): entries past this run's closed
    segments are a later copy's, and are left out; missing ones are appended, true for
    every run sharing the list, as those share the segments too.
    """
    if run.sums is None:
        run.sums = {}
    sums = run.sums.get(calendar)
    if sums is None:
        sums = run.sums[calendar] = [0]
    closed = run.size // 2
    if len(sums) > closed + 1:
        return sums[: closed + 1]  # a run measured again after a copy read on from it
    if len(sums) <= closed:
        bounds = run.shared
        total = sums[-1]
        elapsed_us = calendar.elapsed_us
        for index in range(2 * len(sums) - 2, 2 * closed, 2):
            total += elapsed_us(bounds[index], bounds[index + 1])
            sums.append(total)
    return sums
