"""What the engine refuses of a valid event in the light of its clock or its ticket.

The models refuse what a message says on its own; these rules need more: the engine's
clock (an instant too far ahead of it), or what the ticket already holds (a second
creation, one event too many). Intake applies them to live events and ``simulate`` to a
history, in arrival order both, so the two agree on what is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from engine.events.models import TicketEvent

# A ticket's events, at most. A busy real ticket has a few hundred; the limit keeps one
# frontend's loop from making a ticket that costs every later event, the store and the
# HTTP port more and more. SLA_ENGINE_MAX_EVENTS_PER_TICKET changes it.
MAX_EVENTS_PER_TICKET = 10_000
# How far ahead of the engine's clock an event may be dated: a frontend's clock may be
# off by minutes, a time zone mistake by hours, but an instant days ahead is a mistake
# that would stop the ticket's clocks until then. SLA_ENGINE_MAX_AHEAD_S changes it.
MAX_AHEAD_S = 3 * 24 * 3600.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is dead-lettered: a kind for the metric, a reason for people."""

    kind: str  # one of engine.metrics.DEAD_LETTER_REASONS
    reason: str


@dataclass(frozen=True, slots=True)
class Horizon:
    """The latest instant an event may be dated: ``max_ahead_s`` after the engine's clock
    read at ``now``. Made once per batch, so each message costs one comparison."""

    now: datetime
    max_ahead_s: float
    latest: datetime

    @classmethod
    def at(cls, now: datetime, max_ahead_s: float) -> Horizon:
        """The horizon as the engine's clock reads ``now``."""
        return cls(now, max_ahead_s, now + timedelta(seconds=max_ahead_s))

    def refusal(self, event: TicketEvent) -> Refusal | None:
        """A refusal when the event is dated after the horizon."""
        if event.occurred_at <= self.latest:
            return None
        return Refusal(
            "out_of_range",
            f"occurred_at {event.occurred_at.isoformat()} is more than {self.max_ahead_s:g} s"
            f" ahead of the engine's clock ({self.now.isoformat()})",
        )


@dataclass(slots=True)
class TicketAdmission:
    """What has been admitted of one ticket so far: the event that created it, and how
    many events it holds. Duplicates of admitted events are not offered again."""

    limit: int
    created_by: UUID | None = None
    count: int = 0

    def refusal(self, event: TicketEvent) -> Refusal | None:
        """Why ``event`` (new to the ticket) may not be added, or None when it may."""
        if self.count >= self.limit:
            return Refusal(
                "ticket_limit",
                f"ticket {event.ticket_id!r} holds {self.count} events, the most one ticket"
                f" may hold ({self.limit})",
            )
        if (
            event.type == "ticket.created"
            and self.created_by is not None
            and self.created_by != event.event_id
        ):
            # The earliest creation would win and restart every clock from its instant:
            # a stray creation dated years back would breach a live ticket at once.
            return Refusal(
                "second_creation",
                f"ticket {event.ticket_id!r} was created by event {self.created_by} already;"
                " a second ticket.created is refused (change a ticket with"
                " ticket.reclassified or ticket.priority_changed)",
            )
        return None

    def admit(self, event: TicketEvent) -> None:
        """Count ``event`` as added to the ticket."""
        self.count += 1
        if event.type == "ticket.created" and self.created_by is None:
            self.created_by = event.event_id
