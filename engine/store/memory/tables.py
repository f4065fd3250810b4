"""The tables of the in-memory store: the rows the PostgreSQL schema holds, as dataclasses.

Every in-memory port works on one ``Tables``; its transactions are serialised by one lock
and roll back by restoring a copy taken when they began, which is what a test of the use
cases above the store needs of a database (all or nothing, one at a time), no more.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID


@dataclass
class TicketRow:
    """A row of ``tickets``: what the last measurement said of the ticket, and its lock."""

    ticket_id: str
    created_at: datetime | None = None
    department: str | None = None
    service: str | None = None
    priority: str | None = None
    status: str | None = None
    assigned_function: str | None = None
    agreement_kind: str | None = None
    agreements: dict[str, Any] = field(default_factory=dict)
    clock_keys: list[str] = field(default_factory=list)
    event_count: int = 0
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    personal_data_purged_at: datetime | None = None
    feed_version: int = 0  # commits that changed its clocks (the SLA feed's version)
    assigned_team: str | None = None


@dataclass
class EventRow:
    """A row of ``events``: one recorded event as it came."""

    event_id: UUID
    ticket_id: str
    type: str
    occurred_at: datetime
    payload: str  # the JSON text


@dataclass
class ClockRow:
    """A row of ``clocks``."""

    ticket_id: str
    clock_key: str
    metric: str
    agreement_kind: str
    agreement_key: str
    department: str
    service: str
    function: str
    priority: str
    calendar: str
    target_s: float
    state: str
    running: bool
    elapsed_s: float
    fraction: float
    started_at: datetime
    stopped_at: datetime | None
    deadline: datetime | None
    next_due_at: datetime | None
    measured_at: datetime
    steps: list[float] = field(default_factory=list)
    tiers: list[str] = field(default_factory=list)
    step_due_at: list[datetime | None] = field(default_factory=list)


@dataclass
class StepRow:
    """A row of ``escalation_steps``: a step that fired, once per clock."""

    ticket_id: str
    clock_key: str
    step: float
    tier: str
    metric: str
    agreement_kind: str
    department: str
    service: str
    priority: str
    target_s: float
    due_at: datetime
    fired_at: datetime
    status: str = "fired"  # or "superseded"
    superseded_at: datetime | None = None


@dataclass
class NoticeRow:
    """A row of ``outbox``: one notice to one recipient on one channel."""

    notice_id: UUID
    ticket_id: str | None  # None for a monthly report's: of no ticket, clock or step
    clock_key: str | None
    step: float | None
    channel: str
    recipient: str
    recipient_name: str
    subject: str
    body: str
    payload: Any  # the JSON value
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"  # or "sent", "failed", "superseded"
    attempts: int = 0
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None
    html: str | None = None
    attachments: list[dict[str, str]] = field(default_factory=list)


@dataclass
class MonthlyReportRow:
    """A row of ``monthly_reports``: a department's month, claimed once."""

    department: str
    month: date
    due_at: datetime
    claimed_at: datetime
    notice_ids: list[UUID]


@dataclass
class BudgetRow:
    """A row of ``notice_budgets``: where a recipient stands on a channel (None: quiet)."""

    window_start: datetime | None = None
    sent: int = 0
    holding: bool = False


@dataclass
class DigestRow:
    """A row of ``digests``: the notices held for one recipient, channel and window."""

    digest_id: UUID
    channel: str
    recipient: str
    recipient_name: str
    language: str
    window_start: datetime
    send_at: datetime
    items: list[Any]  # the JSON documents of the items it lists
    held: int  # every item held, listed or not
    created_at: datetime
    next_attempt_at: datetime
    status: str = "pending"  # or "sent", "failed", "superseded"
    attempts: int = 0
    sent_at: datetime | None = None
    failed_at: datetime | None = None
    last_error: str | None = None


@dataclass
class FeedRow:
    """A row of ``sla_feed``: the latest version of a ticket's clocks not yet published."""

    ticket_id: str
    version: int
    changed_at: datetime
    claimed_until: datetime | None = None


@dataclass
class RatingRow:
    """A row of ``ratings``: the rating that counts for one ticket."""

    ticket_id: str
    event_id: UUID
    score: int
    rated_at: datetime


@dataclass
class Tables:
    """Every table of the store, keyed as their primary keys are."""

    tickets: dict[str, TicketRow] = field(default_factory=dict)
    events: dict[UUID, EventRow] = field(default_factory=dict)
    clocks: dict[tuple[str, str], ClockRow] = field(default_factory=dict)
    steps: dict[tuple[str, str, float], StepRow] = field(default_factory=dict)
    outbox: dict[UUID, NoticeRow] = field(default_factory=dict)
    feed: dict[str, FeedRow] = field(default_factory=dict)
    budgets: dict[tuple[str, str], BudgetRow] = field(default_factory=dict)
    digests: dict[UUID, DigestRow] = field(default_factory=dict)
    ratings: dict[str, RatingRow] = field(default_factory=dict)
    monthly_reports: dict[tuple[str, date], MonthlyReportRow] = field(default_factory=dict)
    # Who hears of an earlier due instant, as schedulers LISTEN in PostgreSQL.
    due_listeners: list[Callable[[datetime | None], None]] = field(default_factory=list, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tables]:
        """All or nothing, one at a time: an exception restores the tables as they were."""
        async with self._lock:
            saved = {name: copy.deepcopy(getattr(self, name)) for name in _TABLES}
            try:
                yield self
            except BaseException:
                for name, rows in saved.items():
                    setattr(self, name, rows)
                raise

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Tables]:
        """One at a time, read only: no copy to roll back to, as nothing is written."""
        async with self._lock:
            yield self

    def feed_changed(self, ticket_id: str, at: datetime) -> None:
        """A commit changed the ticket's clocks: a new version for the SLA feed."""
        ticket = self.tickets[ticket_id]
        ticket.feed_version += 1
        self.feed[ticket_id] = FeedRow(ticket_id, ticket.feed_version, at)

    def announce_due(self, at: datetime | None) -> None:
        """Tell every listener of an earlier due instant, as a recording's NOTIFY does."""
        for listener in list(self.due_listeners):
            listener(at)


_TABLES = (
    "tickets",
    "events",
    "clocks",
    "steps",
    "outbox",
    "feed",
    "budgets",
    "digests",
    "ratings",
    "monthly_reports",
)
