"""What people and operations read of the store: the ports, and the rows that cross them.

Three small ports rather than one: the gauges, one ticket's state and a period's history
are read by different parts of the engine (a refresher, the HTTP port, the CLI), each of
which takes only the one it uses. ``ReadStore`` is all three, as each adapter provides.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol


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


class HistoryReads(Protocol):
    """A period's tickets, chosen by their creation in ``[start, end)``."""

    def clocks_of_period(
        self, start: datetime, end: datetime, department: str | None
    ) -> AsyncGenerator[StoredClock, None]:
        """Their clocks in ticket then clock key order, read in one snapshot."""
        ...

    def events_of_period(self, start: datetime, end: datetime) -> AsyncGenerator[str, None]:
        """All their events' JSON payloads, in occurred-at then event id order."""
        ...


class ReadStore(GaugeReads, TicketReads, HistoryReads, Protocol):
    """Every read of this module."""
