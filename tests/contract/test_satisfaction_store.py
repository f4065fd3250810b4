"""The ratings: written through the recording port, read per department and service over
a period; the same cases on PostgreSQL and in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import pytest

from engine.satisfaction import RatingCounts
from engine.store.memory.reads import MemoryReads
from engine.store.memory.recording import MemoryRecordingStore
from engine.store.memory.tables import Tables, TicketRow
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from engine.store.reads import SatisfactionReads
from engine.store.recording import CountedRating, RecordingStore
from tests.contract.read_seeding import MemorySeeder, PostgresSeeder, Seeder
from tests.services import own_schema

START, END = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class Store:
    """The recording port and the reads on the same tables, and a way to fill them."""

    recording: RecordingStore
    reads: SatisfactionReads
    seed: Seeder


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        tables = Tables()
        yield Store(MemoryRecordingStore(tables), MemoryReads(tables), MemorySeeder(tables))
        return
    async with own_schema("s") as url:
        connection = await asyncpg.connect(url)
        try:
            await migrate(connection)
            yield Store(
                PostgresRecordingStore(connection),
                PostgresReads(connection),
                PostgresSeeder(connection),
            )
        finally:
            await connection.close()


def ticket(ticket_id: str, created_at: datetime | None, department: str | None = "okf",
           service: str | None = "opus-loen") -> TicketRow:  # fmt: skip
    return TicketRow(ticket_id, created_at=created_at, department=department, service=service,
                     updated_at=START)  # fmt: skip


def rating(ticket_id: str, score: int, n: int = 1, at: datetime = START + HOUR) -> CountedRating:
    return CountedRating(ticket_id, UUID(int=n), score, at)


async def write(store: Store, *ratings: CountedRating) -> None:
    async with store.recording.transaction() as recording:
        await recording.write_ratings(ratings)


async def period_tickets(store: Store) -> None:
    """A, B, C, D rated and created in the period, in three groups; E created before it,
    F never created (its rating waits), G created on its end."""
    await store.seed.add(
        ticket("A", START), ticket("B", START + HOUR), ticket("C", START, service="esdh"),
        ticket("D", END - HOUR, department="bif", service="print"),
        ticket("E", START - HOUR), ticket("F", None, None, None), ticket("G", END),
    )  # fmt: skip
    await write(
        store, rating("A", 5), rating("B", 3), rating("C", 4), rating("D", 1),
        rating("E", 5), rating("F", 2), rating("G", 1),
    )  # fmt: skip


async def test_the_ratings_of_a_periods_tickets_are_counted_per_department_and_service(
    store: Store,
) -> None:
    await period_tickets(store)
    assert await store.reads.satisfaction_of_period(START, END) == [
        RatingCounts("bif", "print", (1, 0, 0, 0, 0)),
        RatingCounts("okf", "esdh", (0, 0, 0, 1, 0)),
        RatingCounts("okf", "opus-loen", (0, 0, 1, 0, 1)),
    ]
    assert await store.reads.satisfaction_of_period(START, END, "bif") == [
        RatingCounts("bif", "print", (1, 0, 0, 0, 0)),
    ]
    assert await store.reads.satisfaction_of_period(START, END, "nobody") == []
    assert await store.reads.satisfaction_of_period(END, END + HOUR) == [
        RatingCounts("okf", "opus-loen", (1, 0, 0, 0, 0)),
    ]


async def test_a_ticket_counts_once_with_the_rating_written_last(store: Store) -> None:
    await period_tickets(store)
    await write(store, rating("A", 2, n=7, at=START + 2 * HOUR), rating("B", 3, n=8))
    counts = await store.reads.satisfaction_of_period(START, END, "okf")
    assert counts[-1] == RatingCounts("okf", "opus-loen", (0, 1, 1, 0, 0))
    assert counts[-1].count == 2


async def test_a_rating_follows_its_tickets_department_and_service(store: Store) -> None:
    # Written before the ticket is known to the period (its row says nothing yet), read
    # under the department and service its row holds when the period is read.
    await write(store, rating("R", 4))
    await store.seed.add(ticket("R", START, department="sof", service="mobiltelefoni"))
    assert await store.reads.satisfaction_of_period(START, END) == [
        RatingCounts("sof", "mobiltelefoni", (0, 0, 0, 1, 0)),
    ]


async def test_ratings_written_in_a_transaction_that_rolls_back_are_not_kept(
    store: Store,
) -> None:
    await store.seed.add(ticket("A", START))

    async def failing() -> None:
        async with store.recording.transaction() as recording:
            await recording.write_ratings([rating("A", 1)])
            raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError, match="the batch failed"):
        await failing()
    assert await store.reads.satisfaction_of_period(START, END) == []
