"""Bad input through the running engine, real RabbitMQ and PostgreSQL: each poison message
is dead-lettered once with its reason, and every good message around it is recorded."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY

from engine.config import load_config
from engine.events import parse_event
from engine.intake import topology
from engine.intake.publish import publish_events
from engine.intake.recorder import Recorder
from engine.settings import Settings
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG
from tests.integration.conftest import RunningEngine
from tests.poison import TROUBLE, dead_letters, poison_classes, publish_with_ids, settled
from tests.services import AMQP_URL, poll
from tests.streams import event, lines, stream

pytestmark = pytest.mark.integration
LIMIT = 7  # the events of the streams' longest ticket: one more is over it


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_events_per_ticket": LIMIT})


def dead_letter_count(kind: str) -> float:
    return REGISTRY.get_sample_value("sla_intake_dead_letters_total", {"reason": kind}) or 0.0


@pytest.mark.parametrize("name", [p.name for p in poison_classes(0, "T-0")])
async def test_each_poison_is_dead_lettered_once_and_its_batch_recorded(
    name: str,
    engine: RunningEngine,
    db: asyncpg.Connection,
    broker: aio_pika.abc.AbstractChannel,
    logs: list[MutableMapping[str, Any]],
) -> None:
    good = stream(12)  # batches of 50: the poison shares its batch with good events
    first_created = next(e for e in good if e["type"] == "ticket.created")
    [poison] = [p for p in poison_classes(0, first_created["ticket_id"]) if p.name == name]
    counted_before = dead_letter_count(poison.kind)
    half = len(good) // 2
    await publish_events(lines(good[:half]), AMQP_URL)
    await publish_with_ids([(poison.body, poison.message_id)])
    await publish_events(lines(good[half:]), AMQP_URL)
    await settled(db, lambda: engine.consumer.held)

    [dead] = await dead_letters(broker)
    assert dead.message_id == poison.message_id
    reason = str((dead.headers or {})[topology.REASON_HEADER])
    assert poison.says in reason, reason
    assert dead.body == poison.body
    assert dead_letter_count(poison.kind) == counted_before + 1
    stored = [
        str(row["event_id"])
        for row in await db.fetch(
            "SELECT event_id FROM events WHERE ticket_id NOT LIKE 'SENTINEL-%'"
        )
    ]
    assert sorted(stored) == sorted(e["event_id"] for e in good)
    named = [entry["event"] for entry in logs]
    assert named.count("intake.dead_lettered") == 1
    assert not TROUBLE & set(named), [e for e in logs if e["event"] in TROUBLE]
    if poison.kind == "second_creation":  # the first creation stands
        created_at = await db.fetchval(
            "SELECT created_at FROM tickets WHERE ticket_id = $1", first_created["ticket_id"]
        )
        assert created_at == datetime.fromisoformat(first_created["occurred_at"])


async def test_every_poison_class_at_once_between_good_events(
    engine: RunningEngine,
    db: asyncpg.Connection,
    broker: aio_pika.abc.AbstractChannel,
    logs: list[MutableMapping[str, Any]],
) -> None:
    good = stream(40, seed=3)
    created = [e["ticket_id"] for e in good if e["type"] == "ticket.created"]
    await publish_events(lines(good[:60]), AMQP_URL)
    poison = [p for n in range(2) for p in poison_classes(n, created[n])]
    await publish_with_ids([(p.body, p.message_id) for p in poison])
    await publish_events(lines(good[60:]), AMQP_URL)
    await settled(db, lambda: engine.consumer.held)

    found = {str(m.message_id): m for m in await dead_letters(broker)}
    assert set(found) == {p.message_id for p in poison}
    for p in poison:
        assert p.says in str((found[p.message_id].headers or {})[topology.REASON_HEADER])
    assert await db.fetchval(
        "SELECT count(*) FROM events WHERE ticket_id NOT LIKE 'SENTINEL-%'"
    ) == len(good)
    assert not TROUBLE & {entry["event"] for entry in logs}


async def test_an_event_past_the_limit_is_refused_and_a_redelivery_is_not(
    engine: RunningEngine, db: asyncpg.Connection, broker: aio_pika.abc.AbstractChannel
) -> None:
    good = stream(8, seed=5)
    full = max({e["ticket_id"] for e in good}, key=lambda t: sum(e["ticket_id"] == t for e in good))
    held = [e for e in good if e["ticket_id"] == full]
    assert len(held) == LIMIT
    more = event("ticket.commented", full, 99, datetime.fromisoformat(held[-1]["occurred_at"]),
                 visibility="public", body="one too many")  # fmt: skip
    await publish_events(lines(good), AMQP_URL)

    # The good events recorded first: batches are recorded in pipeline, so one holding the
    # event past the limit could take the ticket's lock before the batch with its last.
    async def recorded() -> bool:
        count = "SELECT count(*) FROM events WHERE ticket_id NOT LIKE 'SENTINEL-%'"
        return bool(await db.fetchval(count) == len(good))

    await poll(recorded, timeout_s=30, what="the good events recorded")
    await publish_with_ids([(json.dumps(more).encode(), "over-the-limit")])
    await publish_events(lines(held[:2]), AMQP_URL)  # a redelivery: a duplicate, not refused
    await settled(db, lambda: engine.consumer.held)

    [dead] = await dead_letters(broker)
    assert dead.message_id == "over-the-limit"
    reason = str((dead.headers or {})[topology.REASON_HEADER])
    assert f"holds {LIMIT} events, the most one ticket may hold ({LIMIT})" in reason
    assert await db.fetchval(
        "SELECT count(*) FROM events WHERE ticket_id NOT LIKE 'SENTINEL-%'"
    ) == len(good)
    assert await db.fetchval("SELECT event_count FROM tickets WHERE ticket_id = $1", full) == LIMIT
    assert engine.consumer.stats.duplicates == 2


async def test_the_recorder_refuses_a_second_creation_in_the_batch_and_after_it(
    db: asyncpg.Connection,
) -> None:
    await migrate(db)
    recorder = Recorder(ClockMeter(load_config(EXAMPLE_CONFIG)), PostgresRecordingStore(db))
    first, *_ = stream(1, seed=7, prefix="TWICE")
    assert first["type"] == "ticket.created"
    strays = [{**first, "event_id": str(uuid4()), "occurred_at": "1990-01-01T09:00:00+01:00"}
              for _ in range(2)]  # fmt: skip
    now = datetime.now(UTC)
    batch = [parse_event(json.dumps(e)) for e in (first, strays[0], first)]
    outcome = await recorder.record(batch, now)
    assert list(outcome.refused) == [batch[1].event_id]
    assert outcome.refused[batch[1].event_id].kind == "second_creation"
    assert (outcome.recorded, outcome.duplicates) == (1, 1)  # the first's copy: a duplicate
    later = await recorder.record([parse_event(json.dumps(strays[1]))], now)
    assert [r.kind for r in later.refused.values()] == ["second_creation"]
    created_at = await db.fetchval("SELECT created_at FROM tickets")
    assert created_at == datetime.fromisoformat(first["occurred_at"])
