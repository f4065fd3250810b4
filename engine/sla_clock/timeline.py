"""A ticket's history read from its events: who it belongs to and when each clock ran.

Events are taken in ``occurred_at`` order (ties broken by ``event_id``), so the result is
the same whatever order they arrived in. Events dated before the ticket's creation are
kept but do not move its clocks. A ``Reading`` reads on from where it stopped, so that
an event appended to a long history is read alone; an event dated earlier than the last
one read needs the whole history read again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter, itemgetter
from uuid import UUID

from engine.business_time.calendar import BusinessCalendar, to_us
from engine.business_time.wall_time import MICROSECOND
from engine.events import TicketEvent
from engine.events.models import Prioritised
from engine.vocabulary import Level, Metric, Priority, ProviderFunction

PriorityOf = Callable[[Level, Level], Priority]
PAUSING = frozenset({"pending_customer", "pending_third_party"})
# No clock kept: one shared empty set rather than one per reading (see Reading.kept).
_NONE_KEPT: frozenset[str] = frozenset()
_NAIVE_EPOCH = datetime(1970, 1, 1)


@dataclass(eq=False, slots=True)
class Run:
    """When one clock ran: its open segments, and the instant it stopped for good (if it did)."""

    key: str
    metric: Metric
    started_at: datetime
    function: ProviderFunction | None = None  # the assignee, for an OLA clock
    stopped_at: datetime | None = None
    # The segments' bounds in epoch microseconds, [start, end, start, end, ...], an odd
    # number while the run runs: the first ``size`` of ``shared``. They are only ever
    # appended to, so a copy shares the list with its original: whichever appends to the
    # list as it was takes it over, and one that finds it grown past its own size copies
    # its part first. Copying a run to read on thus costs the same however long it ran,
    # and the original stays as it was.
    shared: list[int] = field(default_factory=list, repr=False)
    size: int = 0
    # Business time of the closed segments summed, [0, first, first + second, ...], per
    # calendar: filled by the measuring, so that a long history is not walked again at
    # each event. A closed segment never changes, so the sums stay true as the run grows;
    # the lists are shared as the bounds are (see _closed_sums in clocks.py).
    sums: dict[BusinessCalendar, list[int]] | None = field(default=None, repr=False)
    # The instants the steps and target fell due at when last measured: the calendar and
    # the business time each needs, the number of bounds then, and the instants (see
    # _measure in clocks.py). The first ``size`` bounds never change, so the instants
    # hold for as long as ``size`` does: a running clock measured again at a later event
    # of its ticket that did not move it is not worked out again. Copied with the run.
    # The calendar apart: a tuple of numbers alone is one the collector stops tracking,
    # and the recorder keeps runs for as long as their tickets' readings.
    due: tuple[tuple[int, ...], int, tuple[int | None, ...]] | None = field(
        default=None, repr=False
    )
    due_calendar: BusinessCalendar | None = field(default=None, repr=False)

    @property
    def bounds_us(self) -> list[int]:
        """The segments' bounds (read only: the list may be shared with copies)."""
        shared = self.shared
        return shared if len(shared) == self.size else shared[: self.size]

    @property
    def running(self) -> bool:
        return self.size % 2 == 1

    @property
    def segments(self) -> list[tuple[datetime, datetime | None]]:
        """The open segments as UTC datetimes, the last one open-ended while it runs."""
        bounds = self.bounds_us
        ends: list[datetime | None] = [_utc(us) for us in bounds[1::2]]
        if self.running:
            ends.append(None)
        return list(zip([_utc(us) for us in bounds[0::2]], ends, strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Run):
            return NotImplemented
        return _compared(self) == _compared(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq is

    # The instant comes in epoch microseconds too, converted once for every run it moves.
    def resume(self, at_us: int) -> None:
        if self.size % 2 == 0:
            self._append(at_us)
            self.stopped_at = None

    def pause(self, at_us: int) -> None:
        if self.size % 2 == 1:
            self._append(at_us)

    def stop(self, at: datetime, at_us: int) -> None:
        if self.stopped_at is None:
            if self.size % 2 == 1:
                self._append(at_us)
            self.stopped_at = at

    def copy(self) -> Run:
        """A copy to read on, leaving this one as it is."""
        sums = None if self.sums is None else dict(self.sums)
        return Run(
            self.key,
            self.metric,
            self.started_at,
            self.function,
            self.stopped_at,
            self.shared,
            self.size,
            sums,
            self.due,
            self.due_calendar,
        )

    def _append(self, us: int) -> None:
        if len(self.shared) != self.size:
            # A copy read on from the same list: take this run's own part, and the sums
            # of its own closed segments only.
            self.shared = self.shared[: self.size]
            if self.sums is not None:
                closed = self.size // 2
                self.sums = {calendar: sums[: closed + 1] for calendar, sums in self.sums.items()}
        self.shared.append(us)
        self.size += 1


def _compared(run: Run) -> tuple[object, ...]:
    """What tells two runs apart (the sums are derived from the bounds)."""
    return (run.key, run.metric, run.started_at, run.function, run.stopped_at, run.bounds_us)


def _stopped_us(run: Run) -> int:
    assert run.stopped_at is not None  # an ended cycle
    return to_us(run.stopped_at)


def _utc(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


@dataclass
class Timeline:
    """What a ticket's events say, ready for the clocks to be measured."""

    ticket_id: str
    created_at: datetime
    department: str
    service: str
    status: str
    priorities: list[tuple[datetime, Priority]]
    runs: list[Run]
    assigned_function: ProviderFunction | None
    closed_at: datetime | None = None  # the retention of its personal data counts from it
    # The team of the latest assignment (``ticket.assigned.team``): a customer team's
    # contact hears of the ticket's warnings in its function lead's stead.
    assigned_team: str | None = None

    def priority_at(self, at: datetime | None) -> Priority:
        """The priority in force at an instant (the latest when ``at`` is None)."""
        priorities = self.priorities
        if at is None or len(priorities) == 1:
            return priorities[-1][1]
        # The first priority holds before it too (events before the creation move nothing).
        later = bisect_right(priorities, at, key=_SINCE)
        return priorities[later - 1 if later else 0][1]


_SINCE = itemgetter(0)


def _priority(event: Prioritised, priority_of: PriorityOf) -> Priority:
    if event.priority is not None:
        return event.priority
    # The model refuses an event with neither a priority nor both of these.
    assert event.impact is not None
    assert event.urgency is not None
    return priority_of(event.impact, event.urgency)


def order(events: Iterable[TicketEvent]) -> list[TicketEvent]:
    """Events in the order the clocks read them: occurred_at, then event_id."""
    return sorted(events, key=READ_ORDER)


# The sort key of that order. attrgetter builds the key tuple in C: a lambda costs a
# Python call per event.
READ_ORDER = attrgetter("occurred_at", "event_id")


def read_timeline(events: Iterable[TicketEvent], priority_of: PriorityOf) -> Timeline | None:
    """The ticket's timeline, or None while its ``ticket.created`` has not arrived."""
    reading = Reading.of(events, priority_of)
    return None if reading is None else reading.timeline


@dataclass(slots=True)
class Reading:
    """A ticket's timeline read up to an event, ready to read later events on from there.

    Reading on with events that all come after the last one read (in ``READ_ORDER``)
    gives what reading every event from the start gives, at a cost that does not grow
    with the history; an event dated earlier than that needs the full reading.
    """

    timeline: Timeline
    response: Run
    resolution: Run
    ola: Run | None  # the clock of the function the ticket is assigned to
    olas: dict[ProviderFunction, Run]  # every function's one OLA clock
    last: tuple[datetime, UUID]  # the READ_ORDER key of the last event read
    count: int  # the events read, those dated before the creation included
    priority_of: PriorityOf
    # The assigned function's response clock until the function first acts (see _acted).
    ola_response: Run | None = None
    # The update cycles (see _updated): the current one, and those that ended, in order.
    # Ended cycles never change as later events are read, so a copy shares the list as
    # runs share their bounds: the first ``settled_size`` of ``settled`` are this
    # reading's, and a copy that finds the list grown past them copies its part first.
    cycle: Run | None = None
    settled: list[Run] = field(default_factory=list, compare=False)  # see ``cycles``
    settled_size: int = 0
    # Ended cycles before this index had ended by the instant the reading this one read
    # on from was measured at (``measured_us``): that measurement held them as they stay,
    # and they are left out of this one's (see ``new_cycles``).
    # (How a reading came about, not what it read: left out of comparisons.)
    measured_cycles: int = field(default=0, compare=False)
    # set by the measuring (clocks.reading_clocks)
    measured_us: int | None = field(default=None, compare=False)
    # Whether every cycle was read afresh (every event read, or a reclassification read):
    # what a store holds of the ticket's ended cycles may then hold some no longer there.
    whole: bool = field(default=True, compare=False)
    # Keys of the clocks that had stopped for good by the instant the reading this one
    # read on from was measured at, and that the events read since left as they were:
    # that measurement held them as they stay, and they are left out of this one's.
    kept: frozenset[str] = field(default=_NONE_KEPT, compare=False)

    @classmethod
    def of(cls, events: Iterable[TicketEvent], priority_of: PriorityOf) -> Reading | None:
        """Every event read, or None while the ticket's ``ticket.created`` has not arrived."""
        ordered = order(events)
        # Events are told apart by their type string: isinstance on pydantic models goes
        # through ABCMeta and costs ten times as much, on the path of every event.
        created = next((e for e in ordered if e.type == "ticket.created"), None)
        if created is None:
            return None
        start = created.occurred_at
        timeline = Timeline(
            ticket_id=created.ticket_id,
            created_at=start,
            department=created.department,
            service=created.service,
            status="new",
            priorities=[(start, _priority(created, priority_of))],
            runs=[],
            assigned_function=None,
        )
        start_us = to_us(start)
        response = Run("response", "response", start, shared=[start_us], size=1)
        resolution = Run("resolution", "resolution", start, shared=[start_us], size=1)
        timeline.runs += [response, resolution]
        reading = cls(timeline, response, resolution, None, {}, READ_ORDER(created), 0, priority_of)
        reading._read(ordered)
        return reading

    @property
    def cycles(self) -> list[Run]:
        """Every update cycle, the current one last."""
        settled = self.settled[: self.settled_size]
        return settled if self.cycle is None else [*settled, self.cycle]

    @property
    def new_cycles(self) -> list[Run]:
        """The update cycles to measure: those that ended since the reading this one read
        on from (all, for a reading of every event), and the current one."""
        ended = self.settled[self.measured_cycles : self.settled_size]
        return ended if self.cycle is None else [*ended, self.cycle]

    def _final_before(self) -> int | None:
        """The instant (epoch microseconds) up to which what stopped stays as it was for
        the events read after this reading: it had stopped by the instant the reading
        was measured at, and before its last event (an event read later at that same
        instant could change the priority it stopped under). None: never measured."""
        if self.measured_us is None:
            return None
        return min(self.measured_us, to_us(self.last[0]) - 1)

    def left_out(self, key: str) -> bool:
        """Whether the clock ``key`` is left out of this reading's measurement, and no
        less there for that: a clock kept as it was (see ``kept``), or an update cycle
        that had ended before the reading this one read on from was measured."""
        if key in self.kept:
            return True
        if not self.measured_cycles or not key.startswith("update:"):
            return False
        return key <= self.settled[self.measured_cycles - 1].key

    @property
    def complete(self) -> bool:
        """Whether the measurement holds every clock (no clock is left out)."""
        return self.measured_cycles == 0 and not self.kept

    def follows(self, events: Sequence[TicketEvent]) -> bool:
        """Whether events in READ_ORDER all come after the last one read."""
        return not events or READ_ORDER(events[0]) > self.last

    def extended(self, events: Sequence[TicketEvent]) -> Reading:
        """A copy that has read on through ``events`` (in READ_ORDER, see ``follows``).

        This reading stays as it was, to be read on from again: for a caller that keeps
        it. One that gives it up reads on in place (``read_on``) and copies nothing.
        """
        return self._copy().read_on(events)

    def _copy(self) -> Reading:
        """A copy to read on: its own timeline and runs, the ended cycles shared (see
        ``settled``), as runs share their bounds."""
        timeline = self.timeline
        runs = {id(run): run.copy() for run in timeline.runs}
        copied = Timeline(
            ticket_id=timeline.ticket_id,
            created_at=timeline.created_at,
            department=timeline.department,
            service=timeline.service,
            status=timeline.status,
            priorities=list(timeline.priorities),
            runs=list(runs.values()),
            assigned_function=timeline.assigned_function,
            closed_at=timeline.closed_at,
            assigned_team=timeline.assigned_team,
        )
        return Reading(
            copied,
            runs[id(self.response)],
            runs[id(self.resolution)],
            None if self.ola is None else runs[id(self.ola)],
            {function: runs[id(run)] for function, run in self.olas.items()},
            self.last,
            self.count,
            self.priority_of,
            None if self.ola_response is None else runs[id(self.ola_response)],
            None if self.cycle is None else self.cycle.copy(),
            self.settled,
            self.settled_size,
            self.measured_cycles,
            self.measured_us,
            self.whole,
            self.kept,
        )

    def read_on(self, events: Sequence[TicketEvent]) -> Reading:
        """This reading, having read on through ``events`` (in READ_ORDER, see ``follows``)
        in place.

        For a caller that gives the reading up: one kept for a ticket no longer says
        what its committed events say until the transaction that read on commits (the
        recorder takes it out of its cache meanwhile, see ``Recorder._measure_again``).
        """
        final_us = self._final_before()
        # The clocks stopped for good by then, as they stand before the events: a run's
        # bounds are only appended to, so one the events did not move has the same
        # number of them, the same stop and the same function (see ``_compared``).
        stopped = (
            []
            if final_us is None
            else [
                (run, run.size, run.stopped_at, run.function)
                for run in self.timeline.runs
                if run.stopped_at is not None and to_us(run.stopped_at) <= final_us
            ]
        )
        self.measured_cycles = (
            0
            if final_us is None
            else bisect_right(self.settled, final_us, hi=self.settled_size, key=_stopped_us)
        )
        self.measured_us = None
        self.whole = False
        self.kept = _NONE_KEPT
        self._read(events)
        if not self.whole and stopped:
            kept = frozenset(
                run.key
                for run, size, stopped_at, function in stopped
                if run.size == size and run.stopped_at == stopped_at and run.function == function
            )
            self.kept = kept or _NONE_KEPT
        return self

    def _read(self, ordered: Sequence[TicketEvent]) -> None:
        """Read events in READ_ORDER, each after the last one read."""
        if not ordered:
            return
        self.count += len(ordered)
        self.last = READ_ORDER(ordered[-1])
        timeline, response, resolution = self.timeline, self.response, self.resolution
        start = timeline.created_at
        if timeline.closed_at is not None:
            return  # closed is final
        for event in ordered:
            at = event.occurred_at
            # The creation itself (and any second one) matches no branch below.
            if at < start:
                continue
            if event.type == "ticket.reclassified":
                # A new agreement applies from the ticket's start: only the terms change,
                # for ended update cycles too, which are measured again.
                timeline.department = event.department or timeline.department
                timeline.service = event.service or timeline.service
                self.measured_cycles = 0
                self.whole = True
            elif event.type == "ticket.priority_changed":
                timeline.priorities.append((at, _priority(event, self.priority_of)))
            elif event.type == "ticket.responded":
                at_us = to_us(at)
                self._acted(at, at_us)
                response.stop(at, at_us)
                self._updated(at, at_us)
            elif event.type == "ticket.commented":
                if event.author_role != "requester":
                    at_us = to_us(at)
                    self._acted(at, at_us)
                    if event.visibility == "public":
                        self._updated(at, at_us)
            elif event.type == "ticket.assigned":
                self._assign(event.function, at)
                timeline.assigned_team = event.team
            elif event.type == "ticket.status_changed":
                timeline.status = event.status
                at_us = to_us(at)
                self._acted(at, at_us)
                ola = self.ola
                following = [resolution] if ola is None else [resolution, ola]
                if event.status in PAUSING:
                    for run in following:
                        run.pause(at_us)
                    self._updated(at, at_us)
                elif event.status == "resolved":
                    # Resolving answers the requester too: a response clock still running
                    # stops.
                    for run in [response, *following]:
                        run.stop(at, at_us)
                    if self.cycle is not None:
                        self.cycle.stop(at, at_us)
                elif event.status == "closed":
                    for run in timeline.runs:
                        run.stop(at, at_us)
                    if self.cycle is not None:
                        self.cycle.stop(at, at_us)
                    timeline.closed_at = at
                    return  # events dated after it do not move the clocks
                else:  # new or in_progress: running again, a reopen keeps the time spent
                    for run in following:
                        run.resume(at_us)
                    self._updated(at, at_us)

    def _acted(self, at: datetime, at_us: int) -> None:
        """The assigned function acted on the ticket: its response clock stops."""
        acting = self.ola_response
        if acting is not None:
            acting.stop(at, at_us)
            self.ola_response = None

    def _start_cycle(self, at: datetime, at_us: int) -> None:
        """A new update cycle from ``at``, running while the resolution clock runs."""
        # Keyed by the instant it began, so that a late event splitting an earlier cycle
        # leaves the keys (and fired steps) of the others as they were; of fixed width, so
        # that the keys sort as the instants do (see ``ended_before``).
        # (isoformat of a naive UTC instant: a tenth of strftime's cost, per update event.)
        stamp = (_NAIVE_EPOCH + MICROSECOND * at_us).isoformat(timespec="microseconds")
        # Running from its start while resolution runs (made so, as the response clock is).
        bounds = [at_us] if self.resolution.running else []
        self.cycle = Run(f"update:{stamp}Z", "update", at, shared=bounds, size=len(bounds))

    def _updated(self, at: datetime, at_us: int) -> None:
        """The requester heard from the provider: the update cycle running ends (kept)
        and the next begins.

        The first response starts the cycles: until it, the response clock measures the
        requester's wait, and an update before it starts none.
        """
        cycle = self.cycle
        if cycle is None:
            if self.response.stopped_at is not None:
                self._start_cycle(at, at_us)
            return
        if cycle.size == 0 or cycle.started_at == at:
            # A cycle that never ran (it began paused, or at this very instant, whatever
            # else happened at it) kept no interval: it is begun again, not counted.
            self._start_cycle(at, at_us)
            return
        cycle.stop(at, at_us)
        if len(self.settled) != self.settled_size:
            self.settled = self.settled[: self.settled_size]  # a copy read on: its own part
        self.settled.append(cycle)
        self.settled_size += 1
        self._start_cycle(at, at_us)

    def _assign(self, function: ProviderFunction, at: datetime) -> None:
        ola = self.ola
        if ola is not None and ola.function == function:
            return
        at_us = to_us(at)
        if ola is not None:
            ola.stop(at, at_us)  # the hand-off decides whether the function met its OLA
            self._acted(at, at_us)  # handing the ticket on is acting on it
        ola = self.olas.get(function)
        if ola is None:
            # An OLA measures the assigned function's resolution target, and its response
            # target from this first assignment until it acts. Numbered in the order
            # functions were first assigned: the keys of tickets never handed back are
            # those of the rule before, a new run per reassignment.
            n = len(self.olas) + 1
            ola = Run(f"ola:{n}:{function}", "resolution", at, function=function)
            acting = Run(f"ola:{n}:{function}:response", "response", at, function=function)
            if self.resolution.running:
                acting.resume(at_us)
            self.olas[function] = ola
            self.timeline.runs += [ola, acting]
            self.ola_response = acting
        else:
            # Handed back: the function's clock goes on with the time it spent, as a
            # reopen resumes resolution, so its steps fire once per ticket and a ticket
            # has at most one OLA clock per provider function.
            ola.stopped_at = None
        if self.resolution.running:
            ola.resume(at_us)
        self.ola = ola
        self.timeline.assigned_function = function
