"""The engine's decisions over a history of events, in memory and in virtual time.

Virtual time is the events' own ``occurred_at``: each event is applied at the instant it
occurred, as if it had arrived then, and between two events of a ticket every step its
clocks reach fires at its due instant, as the daemon's scheduler fires it. The same
pure core decides: ``ClockMeter`` measures, ``escalation.policy`` says which steps are
due, the agreement snapshots are kept the way the recorder keeps them, and a step that
fired never fires again (a retarget fires the steps it passed at once). What the daemon
would refuse (an unknown department or service) is counted as refused, not applied.

Tickets never meet each other in the engine (each is serialised on its own row), so
each is simulated on its own, and the steps of all of them are ordered by due instant.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing import get_context
from operator import attrgetter
from typing import Any, Literal, NamedTuple

from engine.business_time.calendar import to_us
from engine.escalation.policy import BREACH, due_in_order
from engine.events import TicketEvent
from engine.events.admission import MAX_EVENTS_PER_TICKET, TicketAdmission
from engine.reporting.compliance import ClockOutcome, outcome_of
from engine.satisfaction import TicketRating, counted_rating
from engine.sla_clock.agreements import Agreement
from engine.sla_clock.clocks import Clock, TicketClocks
from engine.sla_clock.meter import ClockMeter
from engine.sla_clock.timeline import PAUSING, READ_ORDER


class SimulatedStep(NamedTuple):
    """A step the engine fires, at the instant it falls due.

    A named tuple, as ``ClockOutcome`` is: a year fires hundreds of thousands of them in
    worker processes, and they travel back pickled.
    """

    due_at: datetime
    ticket_id: str
    clock_key: str
    metric: str
    agreement: str
    department: str
    service: str
    priority: str
    function: str
    step: float
    tier: str
    target_s: float
    # Where the ticket was when the step fell due (its latest ticket.assigned by then),
    # which decides the provider side that hears of it; None while unassigned.
    assigned_function: str | None = None
    assigned_team: str | None = None

    @property
    def state(self) -> Literal["warning", "breach", "escalated"]:
        return "warning" if self.step < BREACH else "breach" if self.step == BREACH else "escalated"


@dataclass
class Simulation:
    """What a history does under one configuration, up to ``until``."""

    until: datetime
    events: int = 0  # applied
    duplicates: int = 0  # a second delivery of an event_id: no effect, as in the daemon
    refused: list[tuple[str, str]] = field(default_factory=list)  # (event_id, reason)
    tickets: int = 0
    waiting: int = 0  # tickets whose ticket.created never came
    steps: list[SimulatedStep] = field(default_factory=list)
    outcomes: list[ClockOutcome] = field(default_factory=list)
    # each created ticket's rating that counts (its latest up to ``until``), if rated
    ratings: list[TicketRating] = field(default_factory=list)

    @property
    def breaches(self) -> int:
        return sum(1 for step in self.steps if step.step == BREACH)


def simulate(
    meter: ClockMeter,
    events: Iterable[TicketEvent],
    until: datetime | None = None,
    workers: int = 1,
    max_events_per_ticket: int = MAX_EVENTS_PER_TICKET,
) -> Simulation:
    """Apply ``events`` in virtual time up to ``until`` (default: the last event).

    With ``workers`` > 1 the tickets are shared out among that many processes (this one
    and forked ones): they are independent, and the result is the same, in the same
    order.
    """
    by_ticket: dict[str, list[TicketEvent]] = defaultdict(list)
    admissions: dict[str, TicketAdmission] = {}
    seen: set[int] = set()
    refused: list[tuple[str, str]] = []
    duplicates = 0
    last: datetime | None = None
    for event in events:
        # By the UUID's integer: a UUID hashes in Python code, its int in C.
        key = event.event_id.int
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        reason = meter.refusal(event)
        if reason is not None:
            refused.append((str(event.event_id), reason))
            continue
        # What the daemon's recorder refuses of a ticket, in the same (arrival) order.
        admission = admissions.get(event.ticket_id)
        if admission is None:
            admission = admissions[event.ticket_id] = TicketAdmission(max_events_per_ticket)
        refusal = admission.refusal(event)
        if refusal is not None:
            refused.append((str(event.event_id), refusal.reason))
            continue
        admission.admit(event)
        by_ticket[event.ticket_id].append(event)
        if last is None or event.occurred_at > last:
            last = event.occurred_at
    horizon = until or last
    if horizon is None:
        if refused:
            raise ValueError(f"all {len(refused)} events refused, the first: {refused[0][1]}")
        raise ValueError("no event to simulate and no --until to end at")
    result = Simulation(horizon, duplicates=duplicates, refused=refused)
    tickets = list(by_ticket.items())
    if workers > 1 and len(tickets) >= _PARALLEL_FROM:
        _in_processes(meter, tickets, horizon, workers, result)
    else:
        _simulate_tickets(meter, tickets, horizon, result)
    result.steps.sort(key=_STEP_ORDER)
    return result


def _simulate_tickets(
    meter: ClockMeter,
    tickets: Sequence[tuple[str, list[TicketEvent]]],
    horizon: datetime,
    result: Simulation,
) -> None:
    for ticket_id, ticket_events in tickets:
        ticket_events.sort(key=READ_ORDER)
        applied = (
            ticket_events
            if ticket_events[-1].occurred_at <= horizon
            else [e for e in ticket_events if e.occurred_at <= horizon]
        )
        if not applied:
            continue
        result.tickets += 1
        result.events += len(applied)
        if not _simulate_ticket(meter, ticket_id, applied, horizon, result):
            result.waiting += 1


# Below this many tickets a process pool costs more than it saves.
_PARALLEL_FROM = 5_000
# What the forked workers inherit (copy-on-write) instead of receiving it pickled.
_SHARED: tuple[ClockMeter, Sequence[tuple[str, list[TicketEvent]]], datetime] | None = None


def _in_processes(
    meter: ClockMeter,
    tickets: Sequence[tuple[str, list[TicketEvent]]],
    horizon: datetime,
    workers: int,
    result: Simulation,
) -> None:
    """Share the tickets out: this process takes the first share while ``workers`` - 1
    forked ones take the others, so that one share's results need no pickling."""
    global _SHARED
    _SHARED = (meter, tickets, horizon)
    # Every object alive at the fork is left out of collections, in the workers and here:
    # a worker's collection writes to the objects it walks, and each write copies the
    # page the object is on from this process (the events, the tickets' lists). Seen: one
    # collection in a worker cost 0.9 s of its 4.3 s. Here they return to the oldest
    # generation once the workers are done.
    gc.freeze()
    try:
        # The pool forks its processes here, before this process sorts any events.
        with get_context("fork").Pool(workers - 1) as pool:
            others = pool.map_async(_simulate_share, [(i, workers) for i in range(1, workers)])
            _simulate_tickets(meter, tickets[0::workers], horizon, result)
            shares = others.get()
    finally:
        _SHARED = None
        gc.unfreeze()
    for counts, steps, outcomes, ratings in shares:
        result.tickets += counts[0]
        result.events += counts[1]
        result.waiting += counts[2]
        result.steps += [_as(SimulatedStep, fields) for fields in steps]
        result.outcomes += [_as(ClockOutcome, fields) for fields in outcomes]
        result.ratings += [_as(TicketRating, fields) for fields in ratings]


# A share's result as plain tuples: a named tuple pickles through Python code
# (__reduce_ex__, __getnewargs__), a plain one in C, three times as fast. The parent
# makes them named again with tuple.__new__ called directly, in C, instead of the
# named tuple's own __new__ (Python code).
_Share = tuple[
    tuple[int, int, int], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]
_as = tuple.__new__


def _simulate_share(share: tuple[int, int]) -> _Share:
    """Every ``workers``-th ticket from ``index`` on, in a forked worker."""
    assert _SHARED is not None, "set by _in_processes before the fork"
    meter, tickets, horizon = _SHARED
    index, workers = share
    part = Simulation(horizon)
    _simulate_tickets(meter, tickets[index::workers], horizon, part)
    return (
        (part.tickets, part.events, part.waiting),
        [tuple(step) for step in part.steps],
        [tuple(outcome) for outcome in part.outcomes],
        [tuple(rating) for rating in part.ratings],
    )


# Events that change a clock's target or agreement from the ticket's start (a retarget,
# a reclassification). Once a ticket has had one, an event that sets a stopped clock
# running again is retroactive too: the clock keeps the priority it stopped under, and
# resumes under the latest. A status change does so unless it pauses or stops (a reopen
# resumes resolution and the OLA's clock), and so does an assignment (handed back to a
# function, its OLA clock resumes).
_RETROACTIVE = frozenset({"ticket.priority_changed", "ticket.reclassified"})
_NOT_RESUMING = PAUSING | {"resolved", "closed"}


def _retroactive(event: TicketEvent) -> bool:
    """Whether the event may change clocks before its instant, once the ticket has had
    a retarget or a reclassification (see _RETROACTIVE)."""
    if event.type == "ticket.status_changed":
        return event.status not in _NOT_RESUMING
    return event.type == "ticket.assigned" or event.type in _RETROACTIVE


def _simulate_ticket(
    meter: ClockMeter,
    ticket_id: str,
    events: Sequence[TicketEvent],
    until: datetime,
    result: Simulation,
) -> bool:
    """Fire the ticket's steps; False when it was never created.

    The daemon measures after every event and fires what falls due before the next.
    An event that is not retroactive (see _RETROACTIVE) changes the ticket's clocks only
    from the instant it occurred, so a step that falls due before the next event falls
    due at that instant in every later measurement too, until a retroactive event: up to
    that event, one measurement (just before it) decides, and fires what the daemon's
    measurements after each event before it fired. What fired stays fired.
    """
    attached: dict[str, Agreement] = {}
    fired: dict[str, set[float]] = {}
    created = False
    assignments = _Assignments.of(events)
    first = next((i for i, e in enumerate(events) if i and e.type in _RETROACTIVE), None)
    cuts = (
        []
        if first is None
        else [first, *(i for i in range(first + 1, len(events)) if _retroactive(events[i]))]
    )
    measured: TicketClocks | None = None
    read = 0  # the events the last measurement read
    for cut in cuts:
        instant = events[cut].occurred_at
        # Events come in READ_ORDER: each measurement reads on from the one before, as
        # the recorder does, instead of reading the ticket's history again.
        measured = meter.measure_more(
            None if measured is None else measured.reading,
            events[:cut],
            events[read:cut],
            attached,
            instant,
            in_place=True,  # the measurement before is done with
        )
        read = cut
        if measured is None:  # not created yet: the daemon waits too
            continue
        created = True
        for key, agreement in measured.agreements.items():
            attached.setdefault(key, agreement)  # a snapshot, once taken, is kept
        end_us = to_us(instant)
        for clock in measured.clocks:
            _fire(ticket_id, clock, fired, end_us, assignments, result)
    # Every event read again, not read on from the last cut: that would leave out the
    # clocks that had stopped by then and the update cycles that had ended (their steps
    # fired then), and the outcomes need every clock.
    measured = meter.measure(events, attached, until)
    if measured is None:
        return created
    end_us = to_us(until)
    for clock in measured.clocks:
        _fire(ticket_id, clock, fired, end_us, assignments, result)
    result.outcomes += [_outcome(ticket_id, clock) for clock in measured.clocks]
    rating = counted_rating(events)
    if rating is not None:  # under the ticket's terms as they stand, as the store counts it
        at = measured.timeline
        result.ratings.append(TicketRating(ticket_id, at.department, at.service, rating.score))
    return True


class _Assignments(NamedTuple):
    """A ticket's assignments in READ_ORDER (by occurred_at), to give each step the one
    in force at its due instant as it fires, instead of remaking the step afterwards."""

    at_us: list[int]  # when each took effect, in epoch microseconds
    where: list[tuple[str, str | None]]  # (function, team)

    @classmethod
    def of(cls, events: Sequence[TicketEvent]) -> _Assignments:
        """The assignments among a ticket's events (in READ_ORDER)."""
        # The type string, not isinstance: isinstance on a pydantic model goes through
        # ABCMeta, and this reads every event of a simulated year.
        assigned = [e for e in events if e.type == "ticket.assigned"]
        return cls(
            [to_us(e.occurred_at) for e in assigned], [(e.function, e.team) for e in assigned]
        )

    def at(self, due_us: int) -> tuple[str | None, str | None]:
        """The (function, team) of the latest assignment by ``due_us``; None while unassigned."""
        last = bisect_right(self.at_us, due_us) - 1
        return self.where[last] if last >= 0 else _UNASSIGNED


_UNASSIGNED: tuple[None, None] = (None, None)
_NONE_FIRED: frozenset[float] = frozenset()


def _fire(
    ticket_id: str,
    clock: Clock,
    fired: dict[str, set[float]],
    end_us: int,
    assignments: _Assignments,
    result: Simulation,
) -> None:
    """Fire the clock's steps due by ``end_us`` (epoch microseconds) that have not fired
    (the policy's rule); ``fired`` holds the steps fired so far, by clock key."""
    agreement = clock.agreement
    fractions = agreement.fractions
    due_us = clock.due_us[: len(fractions)]
    # A clock's set is made when its first step fires: most clocks fire none.
    done = fired.get(clock.key)
    due = due_in_order(fractions, agreement.tiers, due_us, done or _NONE_FIRED, end_us)
    if not due:  # the usual case, decided on integers
        return
    if done is None:
        done = fired[clock.key] = set()
    for due_at, step, tier in due:
        done.add(step)
        function, team = assignments.at(due_at)
        result.steps.append(
            # The fields in their order, made with tuple.__new__ in C (see _as): a named
            # tuple's own __new__ is Python code, and a year fires hundreds of thousands.
            _as(
                SimulatedStep,
                (
                    clock.calendar.instant(due_at),
                    ticket_id,
                    clock.key,
                    clock.metric,
                    agreement.kind,  # agreement
                    agreement.department,
                    agreement.service,
                    clock.priority,
                    agreement.function,
                    step,
                    tier,
                    clock.target.total_seconds(),  # target_s
                    function,  # assigned_function
                    team,  # assigned_team
                ),
            )
        )


# The order of the timeline: by due instant, then ticket, clock and step.
_STEP_ORDER = attrgetter("due_at", "ticket_id", "clock_key", "step")


def _outcome(ticket_id: str, clock: Clock) -> ClockOutcome:
    agreement = clock.agreement
    # The fields in their order, made as a SimulatedStep is.
    return _as(
        ClockOutcome,
        (
            ticket_id,
            agreement.department,
            agreement.service,
            clock.priority,
            clock.metric,
            agreement.kind,  # agreement
            agreement.function,
            outcome_of(clock.state),  # measured at the end: its state is current
            clock.running,
            clock.elapsed.total_seconds(),  # elapsed_s
            clock.target.total_seconds(),  # target_s
        ),
    )
