"""The store's adapters side by side: every contract test runs once on each.

A backend is a port's adapters on one set of tables, with what a test needs that no
port offers: clocks written as the recorder writes them, and rows read back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import asyncpg
import pytest

from engine.notify.notice import Notice
from engine.store.feed import FeedStore
from engine.store.firing import FiringStore, QueuedNotice
from engine.store.memory.feed import MemoryFeedStore
from engine.store.memory.firing import MemoryFiringStore
from engine.store.memory.monthly import MemoryMonthlyReportStore
from engine.store.memory.outbox import MemoryOutboxStore
from engine.store.memory.reads import MemoryReads
from engine.store.memory.recording import MemoryRecordingStore
from engine.store.memory.tables import ClockRow, Tables, TicketRow
from engine.store.migrate import migrate
from engine.store.monthly import MonthlyReportStore
from engine.store.outbox import OutboxStore
from engine.store.postgres.feed import PostgresFeedStore
from engine.store.postgres.firing import PostgresFiringStore
from engine.store.postgres.monthly import PostgresMonthlyReportStore
from engine.store.postgres.outbox import PostgresOutboxStore
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from engine.store.reads import HistoryReads
from engine.store.recording import RecordingStore
from tests.services import own_schema

T0 = datetime(2026, 11, 23, 8, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STEPS = (0.5, 1.0)
TIERS = ("operational", "tactical")


class Backend(Protocol):
    name: str
    firing: FiringStore
    outbox: OutboxStore
    recording: RecordingStore
    feed: FeedStore
    monthly: MonthlyReportStore
    reads: HistoryReads

    def another_monthly(self) -> MonthlyReportStore:
        """The monthly port as a second engine holds it: on the same tables, apart."""

    async def add_clock(
        self, ticket_id: str, clock_key: str, due: tuple[datetime | None, ...]
    ) -> None:
        """A running clock with STEPS due at ``due``; next due at the earliest of them."""

    async def clock(self, ticket_id: str, clock_key: str) -> tuple[str, datetime | None]:
        """The clock's state and next due instant."""

    async def measured(self, ticket_id: str, clock_key: str) -> tuple[datetime, float]:
        """When the clock's row was last written, and the elapsed seconds it holds."""

    async def notice(self, notice_id: UUID) -> dict[str, Any]:
        """The outbox row of a notice."""

    async def announce_due(self, at: datetime) -> None:
        """Tell listeners of an earlier due instant, through the recording port."""


def next_due(due: tuple[datetime | None, ...]) -> datetime | None:
    return min((at for at in due if at is not None), default=None)


@dataclass
class MemoryBackend:
    tables: Tables
    firing: FiringStore
    outbox: OutboxStore
    recording: RecordingStore
    feed: FeedStore
    monthly: MonthlyReportStore
    reads: HistoryReads
    name: str = "memory"

    def another_monthly(self) -> MonthlyReportStore:
        return MemoryMonthlyReportStore(self.tables)

    async def add_clock(
        self, ticket_id: str, clock_key: str, due: tuple[datetime | None, ...]
    ) -> None:
        self.tables.tickets.setdefault(ticket_id, TicketRow(ticket_id))
        self.tables.clocks[(ticket_id, clock_key)] = ClockRow(
            ticket_id=ticket_id, clock_key=clock_key, metric="response", agreement_kind="sla",
            agreement_key="sla:okf:opus-loen", department="okf", service="opus-loen",
            function="helpdesk", priority="P1", calendar="office", target_s=900.0,
            state="running", running=True, elapsed_s=0.0, fraction=0.0, started_at=T0,
            stopped_at=None, deadline=due[-1], next_due_at=next_due(due), measured_at=T0,
            steps=list(STEPS), tiers=list(TIERS), step_due_at=list(due),
        )  # fmt: skip

    async def clock(self, ticket_id: str, clock_key: str) -> tuple[str, datetime | None]:
        row = self.tables.clocks[(ticket_id, clock_key)]
        return row.state, row.next_due_at

    async def measured(self, ticket_id: str, clock_key: str) -> tuple[datetime, float]:
        row = self.tables.clocks[(ticket_id, clock_key)]
        return row.measured_at, row.elapsed_s

    async def notice(self, notice_id: UUID) -> dict[str, Any]:
        return vars(self.tables.outbox[notice_id])

    async def announce_due(self, at: datetime) -> None:
        async with self.recording.transaction() as recording:
            await recording.announce_due(at)


_ADD_TICKET = "INSERT INTO tickets (ticket_id) VALUES ($1) ON CONFLICT DO NOTHING"
_INSERT_CLOCK = """
INSERT INTO clocks (ticket_id, clock_key, metric, agreement_kind, agreement_key, department,
    service, function, priority, calendar, target_s, state, running, elapsed_s, fraction,
    started_at, deadline, next_due_at, measured_at, steps, tiers, step_due_at)
VALUES ($1, $2, 'response', 'sla', 'sla:okf:opus-loen', 'okf', 'opus-loen', 'helpdesk',
    'P1', 'office', 900, 'running', true, 0, 0, $3, $4, $5, $3, $6, $7, $8)
"""


@dataclass
class PostgresBackend:
    pool: asyncpg.Pool
    firing: FiringStore
    outbox: OutboxStore
    recording: RecordingStore
    feed: FeedStore
    monthly: MonthlyReportStore
    reads: HistoryReads
    database_url: str
    name: str = "postgres"

    def another_monthly(self) -> MonthlyReportStore:
        return PostgresMonthlyReportStore(self.pool)

    async def add_clock(
        self, ticket_id: str, clock_key: str, due: tuple[datetime | None, ...]
    ) -> None:
        async with self.pool.acquire() as connection:
            await connection.execute(_ADD_TICKET, ticket_id)
            await connection.execute(
                _INSERT_CLOCK, ticket_id, clock_key, T0, due[-1], next_due(due), list(STEPS),
                list(TIERS), list(due),
            )  # fmt: skip

    async def _clock_row(self, ticket_id: str, clock_key: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT * FROM clocks WHERE ticket_id = $1 AND clock_key = $2", ticket_id, clock_key
        )
        assert row is not None
        return row

    async def clock(self, ticket_id: str, clock_key: str) -> tuple[str, datetime | None]:
        row = await self._clock_row(ticket_id, clock_key)
        return row["state"], row["next_due_at"]

    async def measured(self, ticket_id: str, clock_key: str) -> tuple[datetime, float]:
        row = await self._clock_row(ticket_id, clock_key)
        return row["measured_at"], row["elapsed_s"]

    async def notice(self, notice_id: UUID) -> dict[str, Any]:
        row = await self.pool.fetchrow("SELECT * FROM outbox WHERE notice_id = $1", notice_id)
        assert row is not None
        return dict(row)

    async def announce_due(self, at: datetime) -> None:
        async with self.recording.transaction() as recording:
            await recording.announce_due(at)


@asynccontextmanager
async def _postgres() -> AsyncIterator[PostgresBackend]:
    async with own_schema("c") as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        try:
            async with pool.acquire() as connection:
                await migrate(connection)
            yield PostgresBackend(
                pool,
                PostgresFiringStore(pool, database_url=url),
                PostgresOutboxStore(pool),
                PostgresRecordingStore(pool),
                PostgresFeedStore(pool),
                PostgresMonthlyReportStore(pool),
                PostgresReads(pool),
                url,
            )
        finally:
            await pool.close()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """The store's adapters on empty tables: in memory, or in a migrated schema of its own."""
    if request.param == "memory":
        tables = Tables()
        yield MemoryBackend(
            tables,
            MemoryFiringStore(tables),
            MemoryOutboxStore(tables),
            MemoryRecordingStore(tables),
            MemoryFeedStore(tables),
            MemoryMonthlyReportStore(tables),
            MemoryReads(tables),
        )
        return
    async with _postgres() as postgres:
        yield postgres


@pytest.fixture
async def postgres_backend() -> AsyncIterator[PostgresBackend]:
    """The PostgreSQL adapters alone, for what only a database with row locks can show."""
    async with _postgres() as postgres:
        yield postgres


def queued(ticket_id: str, n: int, channel: str = "webhook") -> QueuedNotice:
    """A notice of step 0.5 of the ticket's response clock; ``n`` tells notices apart."""
    notice = Notice(
        notice_id=UUID(int=n), channel=channel,  # type: ignore[arg-type]
        recipient=f"https://hooks.example/{n}", recipient_name="Åse", subject=f"Sag {ticket_id}",
        body="Svartiden er halvvejs brugt.", payload={"ticket_id": ticket_id, "n": n},
    )  # fmt: skip
    return QueuedNotice(ticket_id, "response", 0.5, notice)
