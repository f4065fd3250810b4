"""A ticket's history read from its events: who it belongs to and when each clock ran.

Events are taken in ``occurred_at`` order (ties broken by ``event_id``), so the result is
the same whatever order they arrived in. Events dated before the ticket's creation are
kept but do not move its clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter

from engine.events import TicketEvent
from engine.events.models import Prioritised
from engine.vocabulary import Level, Metric, Priority, ProviderFunction

PriorityOf = Callable[[Level, Level], Priority]
PAUSING = frozenset({"pending_customer", "pending_third_party"})


@dataclass
class Run:
    """When one clock ran: open segments, and the instant it stopped for good (if it did)."""

    key: str
    metric: Metric
    started_at: datetime
    function: ProviderFunction | None = None  # the assignee, for an OLA clock
    segments: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    stopped_at: datetime | None = None

    @property
    def running(self) -> bool:
        return bool(self.segments) and self.segments[-1][1] is None

    def resume(self, at: datetime) -> None:
        if not self.running:
            self.segments.append((at, None))
            self.stopped_at = None

    def pause(self, at: datetime) -> None:
        if self.running:
            self.segments[-1] = (self.segments[-1][0], at)

    def stop(self, at: datetime) -> None:
        if self.stopped_at is None:
            self.pause(at)
            self.stopped_at = at


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

    def priority_at(self, at: datetime | None) -> Priority:
        """The priority in force at an instant (the latest when ``at`` is None)."""
        current = self.priorities[0][1]
        for since, priority in self.priorities:
            if at is not None and since > at:
                break
            current = priority
        return current


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
    response = Run("response", "response", start, segments=[(start, None)])
    resolution = Run("resolution", "resolution", start, segments=[(start, None)])
    timeline.runs += [response, resolution]
    ola: Run | None = None
    closed = False

    for event in ordered:
        at = event.occurred_at
        if event is created or at < start or closed:
            continue
        if event.type == "ticket.reclassified":
            # A new agreement applies from the ticket's start: only the terms change.
            timeline.department = event.department or timeline.department
            timeline.service = event.service or timeline.service
        elif event.type == "ticket.priority_changed":
            timeline.priorities.append((at, _priority(event, priority_of)))
        elif event.type == "ticket.responded":
            response.stop(at)
        elif event.type == "ticket.assigned":
            if ola is not None and ola.function == event.function:
                continue
            if ola is not None:
                ola.stop(at)
            number = sum(1 for run in timeline.runs if run.function is not None) + 1
            # An OLA measures the assigned function's resolution target.
            ola = Run(f"ola:{number}:{event.function}", "resolution", at, function=event.function)
            if resolution.running:
                ola.resume(at)
            timeline.runs.append(ola)
            timeline.assigned_function = event.function
        elif event.type == "ticket.status_changed":
            timeline.status = event.status
            following = [resolution] + ([ola] if ola is not None else [])
            if event.status in PAUSING:
                for run in following:
                    run.pause(at)
            elif event.status == "resolved":
                # Resolving answers the requester too: a response clock still running stops.
                for run in [response, *following]:
                    run.stop(at)
            elif event.status == "closed":
                for run in timeline.runs:
                    run.stop(at)
                closed = True
                timeline.closed_at = at
            else:  # new or in_progress: running again, a reopen keeps the time spent
                for run in following:
                    run.resume(at)
    return timeline
