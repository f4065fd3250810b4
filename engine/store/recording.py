"""The port intake records batches of events through, in the words of the domain.

One batch is one transaction: lock its tickets' rows (in ticket order, so that no two
engines deadlock), add the events new to the store, read what the ticket's clocks are
measured from (its events, the steps already fired), and write the measurement back:
the ticket, its clocks, the standing of steps a late event changed, and the rating that
counts for a ticket a requester rated. The decisions (which
events a ticket refuses, what the clocks say, which steps a late event undid) are the
recorder's, in ``engine.intake.recorder``; the store only keeps and finds rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol
from uuid import UUID

from engine.events import TicketEvent
from engine.sla_clock.agreements import Agreement
from engine.sla_clock.clocks import Clock, TicketClocks

FiredSteps = Mapping[tuple[str, str], Mapping[float, tuple[datetime, bool]]]
"""Per (ticket, clock key): step -> (fired at, still standing, i.e. not superseded)."""

StepKey = tuple[str, str, float]
"""A fired step by its ticket, clock key and step."""


@dataclass(frozen=True, slots=True)
class LockedTicket:
    """A ticket's row, locked for the batch: what it holds of earlier measurements."""

    ticket_id: str
    agreements: str  # the JSON text of every agreement snapshot attached, by key
    clock_keys: Sequence[str]
    event_count: int  # the events recorded for it before this batch
    # The version of its clocks (the SLA feed's): every commit that writes them raises it
    # by one (a measured ticket's ``write_tickets``, a firing's ``advance``), so a writer
    # that knows the version its own write left knows whether the rows are still those.
    feed_version: int


class MeasuredTicket(NamedTuple):
    """A ticket as measured now, to be written to its row.

    ``clocks`` is None for a ticket that waits for its ``ticket.created`` (or cannot be
    measured): its row keeps what it holds and counts its events.
    """

    ticket_id: str
    clocks: TicketClocks | None
    new_agreements: Mapping[str, Agreement]  # snapshots attached now, to add to the row
    event_count: int


class MeasuredClock(NamedTuple):
    """A clock as measured now, with the instant its next unfired step falls due."""

    ticket_id: str
    clock: Clock
    next_due_us: int | None  # epoch microseconds; None: nothing left to fire


class CountedRating(NamedTuple):
    """A ticket's rating that counts (``engine.satisfaction.counted_rating``)."""

    ticket_id: str
    event_id: UUID
    score: int
    rated_at: datetime


@dataclass(frozen=True, slots=True)
class StoppedClock:
    """A clock that a batch stopped (met or breached), with the business time it used."""

    metric: str
    agreement_kind: str
    elapsed_s: float


class RecordingTransaction(Protocol):
    """What recording one batch does; all of it commits, or none."""

    async def add_tickets(self, ticket_ids: Sequence[str]) -> None:
        """Make a row for each ticket the store does not know yet."""
        ...

    async def lock_tickets(self, ticket_ids: Sequence[str]) -> list[LockedTicket]:
        """Lock the rows of the known tickets among these, in ticket order."""
        ...

    async def creations(self, ticket_ids: Sequence[str]) -> dict[str, UUID]:
        """The id of the stored ``ticket.created`` of each ticket that has one."""
        ...

    async def stored(self, event_ids: Sequence[UUID]) -> set[UUID]:
        """The ids among these that the store holds."""
        ...

    async def add_events(self, events: Sequence[tuple[TicketEvent, str]]) -> list[UUID]:
        """Store the events with their JSON text; the ids of those new to the store."""
        ...

    async def event_ids(self, ticket_ids: Sequence[str]) -> list[tuple[str, UUID]]:
        """Every stored event of these tickets, as (ticket, event id)."""
        ...

    async def payloads(self, event_ids: Sequence[UUID]) -> list[str]:
        """The stored JSON text of these events."""
        ...

    async def fired_steps(self, ticket_ids: Sequence[str]) -> FiredSteps:
        """Every step recorded for these tickets' clocks, with its standing."""
        ...

    async def write_tickets(self, tickets: Sequence[MeasuredTicket], now: datetime) -> None:
        """Write what the measurement says of each ticket, and its count of events; a
        measured ticket's (one with clocks) ``feed_version`` goes up by one."""
        ...

    async def write_clocks(
        self, clocks: Sequence[MeasuredClock], now: datetime
    ) -> list[StoppedClock]:
        """Write the clocks as measured at ``now``; those that this write stopped."""
        ...

    async def remove_clocks(self, clocks: Sequence[tuple[str, str]]) -> None:
        """Remove clocks (ticket, clock key) that no longer apply."""
        ...

    async def keep_only_clocks(self, clocks: Mapping[str, Sequence[str]]) -> None:
        """Remove every clock of each ticket but those listed (by key) for it."""
        ...

    async def supersede_steps(self, steps: Sequence[StepKey], now: datetime) -> None:
        """Keep the steps in the record, marked superseded (their notices stay sent)."""
        ...

    async def restore_steps(self, steps: Sequence[StepKey]) -> None:
        """Mark superseded steps fired again, as they were before."""
        ...

    async def announce_due(self, at: datetime) -> None:
        """Tell every scheduler, at commit, of an earlier due instant."""
        ...

    async def write_ratings(self, ratings: Sequence[CountedRating]) -> None:
        """Keep each ticket's rating that counts, in place of any kept for it before."""
        ...


class RecordingStore(Protocol):
    """Where batches of events and their measurements are recorded."""

    def transaction(self) -> AbstractAsyncContextManager[RecordingTransaction]:
        """One batch: commits on leaving, rolls back on an exception."""
        ...
