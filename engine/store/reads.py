"""What people and operations read of the store: the ports, and the rows that cross them.

Small ports rather than one: the gauges, one ticket's state, the worklist and a period's
history (its clocks, events and ratings) are read by different parts of the engine (a
refresher, the HTTP port, the CLI), each of which takes only the ones it uses.
``ReadStore`` is all of them, as each adapter provides.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NamedTuple, Protocol

from engine.satisfaction import RatingCounts


@dataclass(frozen=True, slots=True)
class ClockGroup:
    """Clocks of one department, metric and agreement kind in one bucket, counted.

    ``bucket`` is ``open_running``, ``open_paused`` or ``open_breached`` for an open
    clock (running past its deadline counts as breached), else the stopped clock's state.
    """

    department: str
    metric: str
    agreement_kind: str
    bucket: str
    clocks: int
    at_risk: int  # open, not breached, past the first warning below 1.0
    breaching: tuple[int, ...]  # running clocks due within each window asked for


@dataclass(frozen=True, slots=True)
class ChannelBacklog:
    """The unsent notices of one delivery channel."""

    channel: str
    pending: int
    oldest_pending: datetime | None
    failed: int


@dataclass(frozen=True, slots=True)
class GaugeCounts:
    """What the gauges count, read in one snapshot."""

    clocks: tuple[ClockGroup, ...]
    steps_due: int
    outbox: tuple[ChannelBacklog, ...]


@dataclass(frozen=True)
class TicketRows:
    """What the store holds of one ticket: its events, agreements and fired steps."""

    payloads: list[str]
    agreements: str
    fired: list[tuple[str, float, datetime, str]]  # clock key, step, fired at, status


class StoredClock(NamedTuple):
    """A stored clock as a compliance report reads it.

    A named tuple: a report of a year reads close to a million of them.
    """

    ticket_id: str
    department: str
    service: str
    priority: str
    metric: str
    agreement_kind: str
    function: str
    state: str
    running: bool
    deadline: datetime | None
    elapsed_s: float
    target_s: float


ClockScope = Literal["open", "all"]
LiveState = Literal["running", "paused", "breached", "met"]


class WorklistKey(NamedTuple):
    """A worklist row's place in the order: its next deadline (None: none), its id."""

    next_deadline: datetime | None
    ticket_id: str


@dataclass(frozen=True, slots=True)
class WorklistQuery:
    """Which tickets a worklist page holds, and where it starts.

    Ticket filters (``department``, ``service``, ``priority``, ``function`` and ``team``:
    where the ticket is assigned now) choose tickets; clock filters choose among each
    ticket's clocks, and a ticket is listed when one of its clocks passes them all:
    ``scope`` (``open``: not stopped, the default; ``all``), ``metric``, ``state`` (the
    clock's state at ``now``: a running clock past its deadline is ``breached``),
    ``breached`` (whether one of them is breached, or none is), ``breaching_within``
    (running, not breached yet, its deadline within that span of ``now``).

    Sorted by the next deadline (the earliest deadline of a running clock among those
    chosen; past ones first, the most overdue first), then by ticket id; tickets without
    one come last. ``after`` is the sort key of the last row of the page before.
    """

    now: datetime
    limit: int
    department: str | None = None
    service: str | None = None
    priority: str | None = None
    function: str | None = None
    team: str | None = None
    scope: ClockScope = "open"
    metric: str | None = None
    state: LiveState | None = None
    breached: bool | None = None
    breaching_within: timedelta | None = None
    after: WorklistKey | None = None


class GaugeReads(Protocol):
    """The counts behind the store's gauges."""

    async def gauge_counts(
        self, now: datetime, month_start: datetime, windows: Sequence[timedelta]
    ) -> GaugeCounts:
        """Open clocks and those stopped since ``month_start``, due steps and the outbox."""
        ...


class TicketReads(Protocol):
    """One ticket's rows, and the tickets whose clocks have no steps yet."""

    async def ticket(self, ticket_id: str) -> TicketRows | None:
        """The ticket's rows, read in one snapshot; None when no event of it was recorded."""
        ...

    async def tickets_without_steps(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` ids after ``after``, in order, of tickets with a stepless clock."""
        ...


class WorklistReads(Protocol):
    """Tickets chosen and ordered for an agent's worklist, and their rows."""

    async def worklist(self, query: WorklistQuery) -> list[WorklistKey]:
        """Up to ``query.limit`` tickets after ``query.after``, in worklist order."""
        ...

    async def tickets(self, ticket_ids: Sequence[str]) -> dict[str, TicketRows]:
        """The rows of each ticket that has any, read in one snapshot."""
        ...


class HistoryReads(Protocol):
    """A period's tickets, chosen by their creation in ``[start, end)``."""

    def clocks_of_period(
        self, start: datetime, end: datetime, department: str | None, function: str | None = None
    ) -> AsyncGenerator[StoredClock, None]:
        """Their clocks in ticket then clock key order, read in one snapshot; with
        ``department``, only that department's, with ``function``, only the OLA clocks of
        that provider function."""
        ...

    def events_of_period(self, start: datetime, end: datetime) -> AsyncGenerator[str, None]:
        """All their events' JSON payloads, in occurred-at then event id order."""
        ...


class SatisfactionReads(Protocol):
    """What the requesters of a period's tickets said of them."""

    async def satisfaction_of_period(
        self, start: datetime, end: datetime, department: str | None = None
    ) -> list[RatingCounts]:
        """The tickets created in ``[start, end)`` that are rated, counted by the score
        that counts, per department and service (as the tickets stand), in that order;
        with ``department``, only that department's."""
        ...


class ReadStore(GaugeReads, TicketReads, WorklistReads, HistoryReads, SatisfactionReads, Protocol):
    """Every read of this module."""
