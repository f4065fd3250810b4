"""The port the SLA feed publisher claims and settles tickets' new versions through.

Every commit that changes a ticket's clocks (a batch measuring it, a firing advancing
its steps) raises the ticket's version and leaves a row asking for it to be published,
in the same transaction (see the recording and firing adapters). The publisher claims
such rows, reads each ticket's clocks as they stand, publishes them and settles: a row
whose ticket changed again meanwhile stays for the next version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class FeedClock:
    """A stored clock as the feed tells it."""

    key: str
    metric: str
    agreement_kind: str
    agreement_key: str
    function: str
    priority: str
    state: str
    running: bool
    target_s: float
    elapsed_s: float
    fraction: float
    started_at: datetime
    stopped_at: datetime | None
    deadline: datetime | None
    measured_at: datetime
    steps: tuple[float, ...]
    tiers: tuple[str, ...]
    step_due_at: tuple[datetime | None, ...]
    next_due_at: datetime | None  # the earliest step not fired yet, if one is due ever


@dataclass(frozen=True, slots=True)
class FeedTicket:
    """A ticket's clocks at one version, read in one snapshot."""

    ticket_id: str
    version: int
    department: str
    service: str
    priority: str
    status: str
    assigned_function: str | None
    clocks: tuple[FeedClock, ...]


class FeedStore(Protocol):
    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[FeedTicket]:
        """Claim up to ``limit`` tickets with a version not published yet, the longest
        waiting first, for ``lease`` (another publisher takes them after it lapses), and
        read their clocks as they stand now. A ticket that changed again since its row
        was claimed is left out: its newer version is claimed and published anew, so
        no version is published by two publishers."""
        ...

    async def settle(self, published: Sequence[tuple[str, int]]) -> None:
        """(ticket, version) published: the ticket's row goes, unless it asks for a
        newer version."""
        ...
