"""Intake against the real RabbitMQ and PostgreSQL: events become tickets with clocks."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from engine.config import load_config
from engine.events import parse_event
from engine.intake import topology
from engine.intake.publish import publish_events
from engine.intake.recorder import Recorder
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate, migrations
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG, counting, migrated_up_to
from tests.integration.conftest import RunningEngine
from tests.services import AMQP_URL, poll
from tests.streams import CPH, event, lines, stream, ticket_events

pytestmark = pytest.mark.integration
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)
ONE_MINUTE = timedelta(minutes=1)

# What the events decide. Not state and next_due_at: the scheduler, running beside
# intake in these tests, moves them on as steps fire.
CLOCK_FIELDS = (
    "clock_key, metric, agreement_kind, department, service, function, priority, calendar,"
    " target_s, running, started_at, stopped_at, deadline, steps, tiers, step_due_at"
)


async def count(db: asyncpg.Connection, sql: str, *args: Any) -> int:
    value = await db.fetchval(sql, *args)
    assert isinstance(value, int)
    return value


async def recorded(db: asyncpg.Connection, n: int) -> None:
    async def check() -> bool:
        return await count(db, "SELECT count(*) FROM events") >= n

    await poll(check, what=f"{n} events recorded")


async def test_published_event_becomes_a_ticket_with_its_clocks(
    engine: RunningEngine, db: asyncpg.Connection
) -> None:
    created = stream(1)[0]
    await publish_events(lines([created]), AMQP_URL)
    await recorded(db, 1)
    ticket = await db.fetchrow("SELECT * FROM tickets")
    assert ticket is not None
    assert ticket["ticket_id"] == created["ticket_id"]
    assert ticket["department"] == created["department"]
    assert ticket["agreement_kind"] == "sla"
    rows = await db.fetch("SELECT * FROM clocks ORDER BY clock_key")
    assert [r["clock_key"] for r in rows] == ["resolution", "response"]
    for row in rows:
        assert row["state"] in ("running", "breached")
        assert row["deadline"] is not None
        # Every step has its instant; the scheduler may have fired them all already.
        assert len(row["steps"]) == len(row["tiers"]) == len(row["step_due_at"]) > 0
        assert None not in row["step_due_at"]
        assert row["step_due_at"] == sorted(row["step_due_at"])
    snapshots = json.loads(ticket["agreements"])
    assert list(snapshots) == [f"sla:{created['department']}:{created['service']}"]


async def test_the_same_event_twice_has_one_effect(
    engine: RunningEngine, db: asyncpg.Connection
) -> None:
    events = stream(3)
    await publish_events(lines(events), AMQP_URL)
    await recorded(db, len(events))
    before = await db.fetch(f"SELECT ticket_id, {CLOCK_FIELDS} FROM clocks ORDER BY 1, 2")
    with capture_logs() as logs:
        await publish_events(lines(events[:5]), AMQP_URL)

        async def counted() -> bool:
            return engine.consumer.stats.duplicates == 5

        await poll(counted, what="five duplicates counted")
    # The log names them, so a frontend sending events twice can be found.
    named = [i for line in logs if line["event"] == "intake.duplicates" for i in line["event_ids"]]
    assert sorted(named) == sorted(e["event_id"] for e in events[:5])
    assert await count(db, "SELECT count(*) FROM events") == len(events)
    after = await db.fetch(f"SELECT ticket_id, {CLOCK_FIELDS} FROM clocks ORDER BY 1, 2")
    assert after == before


async def test_reverse_order_gives_the_same_clocks(
    engine: RunningEngine, db: asyncpg.Connection
) -> None:
    in_order = ticket_events("FWD-1", MONDAY, random.Random(7))
    reversed_ = [
        {**e, "ticket_id": "REV-1", "event_id": e["event_id"][:-4] + "beef"}
        for e in reversed(in_order)
    ]
    await publish_events(lines(in_order + reversed_), AMQP_URL)
    await recorded(db, 2 * len(in_order))
    fwd = await db.fetch(f"SELECT {CLOCK_FIELDS} FROM clocks WHERE ticket_id = 'FWD-1' ORDER BY 1")
    rev = await db.fetch(f"SELECT {CLOCK_FIELDS} FROM clocks WHERE ticket_id = 'REV-1' ORDER BY 1")
    # response, resolution, and the resolution and response OLA clocks of the assigned
    # function (the ticket's update cycle never ran: it answered and got to work at once)
    assert len(fwd) == 4
    assert fwd == rev


async def test_invalid_messages_are_dead_lettered_with_reasons_while_the_queue_flows(
    engine: RunningEngine, db: asyncpg.Connection, broker: aio_pika.abc.AbstractChannel
) -> None:
    valid = stream(2)
    unknown = event(
        "ticket.created",
        "BAD-1",
        0,
        MONDAY,
        department="nowhere",
        service="esdh",
        priority="P1",
        subject="x",
    )
    bad = [b"not json", json.dumps({**valid[0], "extra": 1}).encode(), json.dumps(unknown).encode()]
    await publish_events([bad[0], *lines(valid[:3]), bad[1], *lines(valid[3:]), bad[2]], AMQP_URL)
    await recorded(db, len(valid))
    dead = await broker.get_queue(topology.DEAD_LETTER_QUEUE)
    reasons = []
    for _ in range(3):
        message = await dead.get(timeout=10, fail=True)
        assert message is not None
        await message.ack()
        reasons.append(str(message.headers[topology.REASON_HEADER]))
    assert await dead.get(fail=False) is None
    # Two batches are in flight at once, so their dead letters may come in either order.
    reasons.sort()
    assert reasons[0].startswith("invalid event: message: Invalid JSON")
    assert reasons[1] == "invalid event: ticket.created.extra: Extra inputs are not permitted"
    assert reasons[2] == "refers to nothing the configuration knows: unknown department 'nowhere'"
    assert engine.consumer.stats.dead_lettered == 3
    assert await count(db, "SELECT count(*) FROM events") == len(valid)


async def test_events_before_their_creation_are_kept_and_applied_later(
    engine: RunningEngine, db: asyncpg.Connection
) -> None:
    events = stream(1)
    created, rest = events[0], events[1:]
    await publish_events(lines(rest), AMQP_URL)
    await recorded(db, len(rest))
    assert await count(db, "SELECT count(*) FROM clocks") == 0
    assert await count(db, "SELECT count(*) FROM tickets WHERE created_at IS NULL") == 1
    await publish_events(lines([created]), AMQP_URL)
    await recorded(db, len(events))

    # response, resolution, the OLA's resolution and response, and one update cycle
    async def measured() -> bool:
        return await count(db, "SELECT count(*) FROM clocks") == 5

    await poll(measured, what="the clocks of the ticket")
    assert await count(db, "SELECT count(*) FROM clocks WHERE state IN ('met', 'breached')") == 5


async def test_a_rating_before_its_creation_is_held_then_counts_and_is_observed(
    engine: RunningEngine, db: asyncpg.Connection
) -> None:
    events = stream(1, prefix="RATED")
    created = events[0]
    labels = {"department": created["department"], "service": created["service"]}

    def observed(sample: str) -> float:
        return REGISTRY.get_sample_value(f"sla_satisfaction_score_{sample}", labels) or 0.0

    before = (observed("count"), observed("sum"))
    resolved_at = datetime.fromisoformat(events[-1]["occurred_at"])
    ratings = [
        event("ticket.rated", created["ticket_id"], 90 + n, resolved_at + n * ONE_MINUTE,
              score=score)
        for n, score in enumerate((2, 4), start=1)
    ]  # fmt: skip
    # The later rating first, and both before the ticket exists: the later one is kept.
    await publish_events(lines([ratings[1], ratings[0]]), AMQP_URL)
    await recorded(db, 2)
    assert await count(db, "SELECT count(*) FROM ratings WHERE score = 4") == 1
    assert (observed("count"), observed("sum")) == before  # its ticket is not created yet
    await publish_events(lines(events), AMQP_URL)
    await recorded(db, len(events) + 2)

    async def counted() -> bool:
        return observed("count") == before[0] + 1

    await poll(counted, what="the held rating observed once its ticket was created")
    assert observed("sum") == before[1] + 4


async def test_migrate_builds_an_empty_database_from_zero(db: asyncpg.Connection) -> None:
    applied = await migrate(db)
    assert [m.version for m in applied] == [m.version for m in migrations()]
    tables = {
        r["tablename"]
        for r in await db.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }
    assert {"schema_migrations", "events", "tickets", "clocks"} <= tables
    assert await migrate(db) == []  # a second run has nothing to do


async def test_a_recorder_reads_what_another_process_recorded(db: asyncpg.Connection) -> None:
    await migrate(db)
    meter = ClockMeter(load_config(EXAMPLE_CONFIG))
    first, second = (
        Recorder(meter, PostgresRecordingStore(db)),
        Recorder(meter, PostgresRecordingStore(db), cache_size=1),
    )
    events = [parse_event(body) for body in lines(ticket_events("TWO-1", MONDAY, random.Random(3)))]
    now = datetime(2026, 11, 27, tzinfo=UTC)
    await first.record(events[:1], now)
    outcome = await second.record(events[1:], now)  # knows none of the first's events
    assert (outcome.recorded, outcome.measured, outcome.waiting) == (len(events) - 1, 1, 0)
    keys = [r["clock_key"] for r in await db.fetch("SELECT clock_key FROM clocks ORDER BY 1")]
    function = events[1].function  # type: ignore[union-attr]
    assert keys[:4] == [f"ola:1:{function}", f"ola:1:{function}:response", "resolution", "response"]
    assert len(keys) == 5
    assert keys[4].startswith("update:")
    assert await count(db, "SELECT count(*) FROM clocks WHERE stopped_at IS NULL") == 0


async def test_recorders_taking_turns_on_a_ticket_measure_every_event(
    db: asyncpg.Connection,
) -> None:
    # Each recorder keeps the histories it committed; the other's events in between
    # must be read from the database, not left out.
    await migrate(db)
    meter = ClockMeter(load_config(EXAMPLE_CONFIG))
    recorders = [
        Recorder(meter, PostgresRecordingStore(db)),
        Recorder(meter, PostgresRecordingStore(db)),
    ]
    events = [
        parse_event(body) for body in lines(ticket_events("TURN-1", MONDAY, random.Random(5)))
    ]
    now = datetime(2026, 11, 27, tzinfo=UTC)
    for n, one in enumerate(events):
        await recorders[n % 2].record([one], now)
        expected = meter.measure(events[: n + 1], {}, now)
        assert expected is not None
        stored = {r["clock_key"]: r for r in await db.fetch("SELECT * FROM clocks")}
        assert sorted(stored) == sorted(clock.key for clock in expected.clocks)
        for clock in expected.clocks:
            row = stored[clock.key]
            assert (row["state"], row["stopped_at"]) == (clock.state, clock.stopped_at), n
            assert row["elapsed_s"] == pytest.approx(clock.elapsed.total_seconds()), n
    assert await count(db, "SELECT event_count FROM tickets") == len(events)


async def test_a_batch_that_fails_leaves_no_history_behind(
    db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(db)
    meter = ClockMeter(load_config(EXAMPLE_CONFIG))
    first, second = (
        Recorder(meter, PostgresRecordingStore(db)),
        Recorder(meter, PostgresRecordingStore(db)),
    )
    created = parse_event(json.dumps(event(
        "ticket.created", "FAIL-1", 0, MONDAY, department="buf", service="esdh",
        priority="P2", subject="x")))  # fmt: skip
    responded = parse_event(json.dumps(event("ticket.responded", "FAIL-1", 1, MONDAY)))
    working = parse_event(
        json.dumps(event("ticket.status_changed", "FAIL-1", 2, MONDAY, status="in_progress"))
    )
    waiting = parse_event(
        json.dumps(event("ticket.status_changed", "FAIL-1", 3, MONDAY, status="pending_customer"))
    )
    now = datetime(2026, 11, 27, tzinfo=UTC)
    await first.record([created], now)

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("the transaction fails after the clocks were measured")

    with monkeypatch.context() as patch:
        patch.setattr("engine.store.postgres.recording.fired_steps", broken)
        with pytest.raises(RuntimeError):
            await first.record([responded], now)  # rolled back: never recorded
    # Another process records a different second event: the ticket counts two again.
    await second.record([working], now)
    await first.record([waiting], now)
    response = await db.fetchrow("SELECT * FROM clocks WHERE clock_key = 'response'")
    assert response is not None
    assert response["stopped_at"] is None  # the rolled-back response counted for nothing
    assert await count(db, "SELECT event_count FROM tickets") == 3


async def test_a_batch_that_fails_leaves_no_reading_of_what_it_rolled_back(
    db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(db)
    recorder = Recorder(ClockMeter(load_config(EXAMPLE_CONFIG)), PostgresRecordingStore(db))
    created = parse_event(json.dumps(event(
        "ticket.created", "FAIL-2", 0, MONDAY, department="buf", service="esdh",
        priority="P2", subject="x")))  # fmt: skip
    responded = parse_event(json.dumps(event("ticket.responded", "FAIL-2", 1, MONDAY)))
    later = MONDAY.replace(hour=10)
    working = parse_event(
        json.dumps(event("ticket.status_changed", "FAIL-2", 2, later, status="in_progress"))
    )
    now = datetime(2026, 11, 27, tzinfo=UTC)
    await recorder.record([created], now)

    async def broken(*_args: Any) -> Any:
        raise RuntimeError("the transaction fails after the clocks were measured")

    with monkeypatch.context() as patch:
        patch.setattr("engine.store.postgres.recording.fired_steps", broken)
        with pytest.raises(RuntimeError):
            await recorder.record([responded], now)
    # The reading the batch read on in place went with it: the same process reads the
    # committed events afresh, and the rolled-back response is not among them.
    measured_everything: list[object] = []
    with monkeypatch.context() as patch:
        patch.setattr(
            recorder.meter, "measure", counting(recorder.meter.measure, measured_everything)
        )
        await recorder.record([working], now)
    assert len(measured_everything) == 1
    response = await db.fetchrow("SELECT * FROM clocks WHERE clock_key = 'response'")
    assert response is not None
    assert (response["stopped_at"], response["state"]) == (None, "breached")


async def test_a_long_ticket_is_measured_on_from_its_last_event_and_again_when_late(
    db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await migrate(db)
    meter = ClockMeter(load_config(EXAMPLE_CONFIG))
    recorder = Recorder(meter, PostgresRecordingStore(db))
    kinds = [("ticket.status_changed", {"status": "pending_customer"}),
             ("ticket.assigned", {"function": "pc-software"}),
             ("ticket.priority_changed", {"priority": "P1"}),
             ("ticket.status_changed", {"status": "in_progress"}),
             ("ticket.assigned", {"function": "server-network"})]  # fmt: skip
    events = [parse_event(json.dumps(event(
        "ticket.created", "LONG-1", 0, MONDAY, department="buf", service="esdh",
        priority="P2", subject="x")))]  # fmt: skip
    for n in range(1, 40):
        type_, fields = kinds[n % len(kinds)]
        at = MONDAY + n * 7 * ONE_MINUTE
        events.append(parse_event(json.dumps(event(type_, "LONG-1", n, at, **fields))))
    arrival = [*events[:30], *events[31:], events[30]]  # the last one is late
    full = meter.measure
    measured_in_full = []

    def counted(*args: Any) -> Any:
        measured_in_full.append(len(args[0]))
        return full(*args)

    monkeypatch.setattr(meter, "measure", counted)
    now = datetime(2026, 11, 27, tzinfo=UTC)
    for n, one in enumerate(arrival):
        await recorder.record([one], now)
        expected = full(arrival[: n + 1], {}, now)
        assert expected is not None
        stored = {r["clock_key"]: r for r in await db.fetch(
            "SELECT * FROM clocks WHERE ticket_id = 'LONG-1'")}  # fmt: skip
        assert sorted(stored) == sorted(clock.key for clock in expected.clocks)
        for clock in expected.clocks:
            row = stored[clock.key]
            assert (row["state"], row["stopped_at"]) == (clock.state, clock.stopped_at), n
            assert row["elapsed_s"] == pytest.approx(clock.elapsed.total_seconds()), n
            assert row["deadline"] == clock.deadline, n
    assert measured_in_full == [1, len(events)]  # the creation, and the late event


async def test_an_event_the_engine_fails_on_is_dead_lettered_alone(
    engine: RunningEngine,
    db: asyncpg.Connection,
    broker: aio_pika.abc.AbstractChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    measure = ClockMeter.measure

    def failing(self: ClockMeter, events: Any, attached: Any, as_of: datetime) -> Any:
        events = list(events)
        if any(e.ticket_id == "BOOM-1" for e in events):
            raise RuntimeError("cannot measure BOOM-1")
        return measure(self, events, attached, as_of)

    monkeypatch.setattr(ClockMeter, "measure", failing)
    boom = event(
        "ticket.created",
        "BOOM-1",
        0,
        MONDAY,
        department="buf",
        service="esdh",
        priority="P2",
        subject="x",
    )
    good = stream(2)
    await publish_events(lines([*good[:4], boom, *good[4:]]), AMQP_URL)
    await recorded(db, len(good))
    dead = await broker.get_queue(topology.DEAD_LETTER_QUEUE)
    taken: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def dead_lettered() -> bool:
        # The good events of the batch can commit before the dead letter is confirmed.
        got = await dead.get(fail=False)
        if got is not None:
            taken.append(got)
        return bool(taken)

    await poll(dead_lettered, timeout_s=10, what="the failing event's dead letter")
    [message] = taken
    await message.ack()
    assert json.loads(message.body)["ticket_id"] == "BOOM-1"
    assert str(message.headers[topology.REASON_HEADER]).startswith(
        "internal error: RuntimeError('cannot measure BOOM-1')"
    )
    assert await dead.get(fail=False) is None
    assert await count(db, "SELECT count(*) FROM events WHERE ticket_id = 'BOOM-1'") == 0


async def test_migration_004_backfills_when_tickets_closed_before_it(
    db: asyncpg.Connection,
) -> None:
    # A database as version 3 left it: closed tickets without closed_at.
    await migrated_up_to(db, 3)
    at = [MONDAY.replace(hour=9 + hours) for hours in range(4)]
    reopened = [
        event("ticket.created", "OLD-1", 0, at[0], department="buf", service="esdh",
              priority="P3", subject="Printer", requester={"name": "Bruger"}),
        event("ticket.status_changed", "OLD-1", 1, at[1], status="closed"),
        event("ticket.status_changed", "OLD-1", 2, at[2], status="in_progress"),
        event("ticket.status_changed", "OLD-1", 3, at[3], status="closed"),
    ]  # fmt: skip
    still_open = [
        event("ticket.created", "OLD-2", 0, at[0], department="buf", service="esdh",
              priority="P3", subject="Skærm", requester={"name": "Bruger"}),
    ]  # fmt: skip
    for ticket_id, status, events in (("OLD-1", "closed", reopened), ("OLD-2", "new", still_open)):
        await db.execute(
            "INSERT INTO tickets (ticket_id, created_at, status, event_count)"
            " VALUES ($1, $2, $3, $4)",
            ticket_id, at[0], status, len(events),
        )  # fmt: skip
        await db.executemany(
            "INSERT INTO events (event_id, ticket_id, type, occurred_at, payload)"
            " VALUES ($1::uuid, $2, $3, $4, $5::jsonb)",
            [(e["event_id"], ticket_id, e["type"], datetime.fromisoformat(e["occurred_at"]),
              json.dumps(e)) for e in events],
        )  # fmt: skip

    applied = await migrate(db)

    assert [m.version for m in applied] == [m.version for m in migrations()[3:]]
    closed = {r["ticket_id"]: r["closed_at"] for r in await db.fetch(
        "SELECT ticket_id, closed_at FROM tickets")}  # fmt: skip
    # The first closing: the clocks stop there, and a reopening after it moves nothing.
    assert closed == {"OLD-1": at[1], "OLD-2": None}
    # Measured again from its events, the ticket keeps the instant the backfill gave it.
    recorder = Recorder(ClockMeter(load_config(EXAMPLE_CONFIG)), PostgresRecordingStore(db))
    assert await recorder.remeasure(["OLD-1", "OLD-2"], datetime(2026, 11, 27, tzinfo=UTC)) == 2
    assert await db.fetchval("SELECT closed_at FROM tickets WHERE ticket_id = 'OLD-1'") == at[1]


async def test_the_recorder_plans_its_merges_afresh_in_its_own_transaction_only(
    db: asyncpg.Connection,
) -> None:
    # A generic plan kept from the first batches made the ticket update grow with the
    # table (7 to 91 ms a batch on the intake benchmark); the setting must not outlive
    # the batch's transaction, where it would reach the pool's other users.
    await migrate(db)
    before = await db.fetchval("SHOW plan_cache_mode")
    async with PostgresRecordingStore(db).transaction():
        assert await db.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    assert await db.fetchval("SHOW plan_cache_mode") == before == "auto"
