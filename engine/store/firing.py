"""The port the scheduler fires due escalation steps through, in the words of the domain.

One firing is one transaction: claim the tickets whose clocks are due (never a ticket
another engine, or intake, holds), read their due clocks and the steps already fired,
record the steps that fire now with their notices, and move each clock's next due
instant on. Outside a transaction the scheduler asks for the earliest due instant and
listens for word of an earlier one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from engine.escalation import FiredStep
from engine.notify.notice import Notice
from engine.store.outbox import DigestWriter
from engine.vocabulary import AgreementKind, Metric, Priority, ProviderFunction, Tier

ClockId = tuple[str, str]
"""A clock by its ticket and its key."""


@dataclass(frozen=True, slots=True)
class DueClock:
    """A clock whose next due instant has come, with the columns its steps are read from."""

    ticket_id: str
    clock_key: str
    metric: Metric
    agreement_kind: AgreementKind
    department: str
    service: str
    function: ProviderFunction
    priority: Priority
    calendar: str
    target_s: float
    deadline: datetime | None
    steps: tuple[float, ...]
    tiers: tuple[Tier, ...]
    step_due_at: tuple[datetime | None, ...]  # as stored: not checked against ``steps``
    measured_at: datetime
    # The ticket's assignment as its row holds it when the clock is claimed: the latest
    # measurement's, taken under the lock that intake takes too.
    assigned_function: ProviderFunction | None = None
    assigned_team: str | None = None
    stopped_at: datetime | None = None  # a step firing after it is a catch-up


@dataclass(frozen=True, slots=True)
class QueuedNotice:
    """A notice of a fired step, to go into the outbox with the step it tells of."""

    ticket_id: str
    clock_key: str
    step: float
    notice: Notice


@dataclass(frozen=True, slots=True)
class ClockAdvance:
    """A clock's next due instant after a firing (None: nothing left to fire)."""

    ticket_id: str
    clock_key: str
    next_due_at: datetime | None
    breached: bool  # a breach step fired: a running clock is marked breached


class FiringTransaction(DigestWriter, Protocol):
    """What one firing transaction does; all of it commits, or none.

    Notices a budget holds go into digests (``DigestWriter``) in the same transaction."""

    async def claim_due(self, now: datetime, limit: int) -> list[str]:
        """Lock the tickets of up to ``limit`` due clocks: a ticket id per clock claimed."""
        ...

    async def due_clocks(self, tickets: Sequence[str], now: datetime) -> list[DueClock]:
        """The claimed tickets' clocks due at ``now``, earliest first."""
        ...

    async def fired_steps(self, tickets: Sequence[str]) -> Mapping[ClockId, frozenset[float]]:
        """Every step recorded for these tickets' clocks, superseded ones included."""
        ...

    async def record_steps(self, steps: Sequence[FiredStep]) -> list[FiredStep]:
        """Record the steps; those recorded before (by anyone) are left out of the result."""
        ...

    async def enqueue_notices(self, notices: Sequence[QueuedNotice], now: datetime) -> None:
        """Put the notices in the outbox, due at ``now``; a notice id already there is kept."""
        ...

    async def advance(self, clocks: Sequence[ClockAdvance]) -> None:
        """Set the clocks' next due instants, and mark breached the running ones told to."""
        ...


class DueListener(Protocol):
    """A subscription to word of earlier due instants."""

    def is_closed(self) -> bool:
        """Whether word can no longer arrive."""
        ...

    async def close(self) -> None:
        """Stop listening."""
        ...


class FiringStore(Protocol):
    """Where due clocks are claimed and fired steps recorded."""

    def transaction(self) -> AbstractAsyncContextManager[FiringTransaction]:
        """One firing: commits on leaving, rolls back on an exception."""
        ...

    async def earliest_due(self) -> datetime | None:
        """The earliest next due instant of any clock; None when none is due ever."""
        ...

    async def listen(
        self,
        on_due: Callable[[datetime | None], None],
        on_lost: Callable[[DueListener], None],
    ) -> DueListener | None:
        """Call ``on_due`` with each earlier due instant recorded (None: unreadable word);
        ``on_lost`` when listening stops by itself. None when it cannot listen now."""
        ...
