"""At start, intake takes the queued backlog before the scheduler fires: real broker and database.

Events are published while no engine runs, dated on a past working day, so every
step of their clocks fell due meanwhile. Fired before the queued events that stop
them are recorded, such steps are premature: fired, superseded, their notices gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import aio_pika
import asyncpg
import pytest

from engine.config import load_config
from engine.daemon import serve
from engine.intake.consumer import IntakeConsumer
from engine.intake.publish import publish_events
from engine.settings import Settings
from engine.store.migrate import migrate
from tests.helpers import EXAMPLE_CONFIG
from tests.integration.conftest import RunningEngine
from tests.services import AMQP_URL, get_json, poll
from tests.streams import CPH, event, lines, stream

pytestmark = pytest.mark.integration
Logs = list[MutableMapping[str, Any]]
# A working Monday past: every step of a ticket created then is due by now.
PAST_MONDAY = datetime(2026, 11, 23, 8, tzinfo=CPH)


def note(ticket: str, at: datetime) -> dict[str, Any]:
    # An internal comment on a ticket whose creation never comes: recorded, no clocks.
    return event("ticket.commented", ticket, 1, at, visibility="internal", body="notat")


def created(ticket: str, at: datetime) -> dict[str, Any]:
    # ØKF's Opus Løn, P1: response 15 minutes, resolution 2 hours, on the office calendar.
    return event("ticket.created", ticket, 0, at, department="okf", service="opus-loen",
                 priority="P1", subject="Løn fejler", requester={"name": "B"})  # fmt: skip


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningEngine]:
    """The engine in this event loop, started on whatever waits in the queue."""
    stopping = asyncio.Event()
    started: asyncio.Future[IntakeConsumer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(settings, load_config(EXAMPLE_CONFIG), stopping, on_started=started.set_result)
    )
    waiting: set[asyncio.Future[object]] = {task, started}  # type: ignore[arg-type]
    done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert started in done, "the engine did not start"
    try:
        yield RunningEngine(started.result(), stopping, task)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


async def count(db: asyncpg.Connection, sql: str) -> int:
    return int(await db.fetchval(sql))


def logged(logs: Logs, name: str) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] == name]


async def test_the_backlog_is_recorded_before_any_step_fires_and_nothing_is_premature(
    settings: Settings,
    broker: aio_pika.abc.AbstractChannel,
    db: asyncpg.Connection,
    logs: Logs,
) -> None:
    # Tickets of a past day, each closed in the end, and one never touched again: its
    # steps are truly due. In the queue, each ticket's creation lies ahead of the events
    # that stop its clocks, with other tickets' events between.
    backlog = [created("S-OPEN", PAST_MONDAY), *stream(100, seed=7, prefix="S", day=PAST_MONDAY)]
    await publish_events(lines(backlog), AMQP_URL)
    assert len(backlog) > settings.prefetch  # more than intake takes in one go
    async with running(settings.model_copy(update={"startup_backlog_wait_s": 60.0})):

        async def settled() -> bool:
            recorded = await count(db, "SELECT count(*) FROM events")
            due = await count(db, "SELECT count(*) FROM clocks WHERE next_due_at <= now()")
            return recorded == len(backlog) and due == 0

        await poll(settled, timeout_s=60, what="the backlog recorded and every due step fired")
    # No step fired on part of its ticket's events, to be undone by the rest.
    assert await count(db, "SELECT count(*) FROM escalation_steps WHERE status = 'superseded'") == 0
    (ended,) = logged(logs, "scheduler.backlog_wait_ended")
    assert ended["outcome"] == "drained"
    assert ended["messages"] == len(backlog)
    assert ended["received"] >= len(backlog)
    # Nothing fired before the wait ended.
    first_fired = next(n for n, e in enumerate(logs) if e["event"] == "escalation.fired")
    assert logs.index(ended) < first_fired
    open_steps = await db.fetch(
        "SELECT step FROM escalation_steps WHERE ticket_id = 'S-OPEN' AND clock_key = 'response'"
        " AND status = 'fired' ORDER BY step"
    )
    assert [r["step"] for r in open_steps] == [0.5, 0.75, 0.9, 1.0, 1.5, 2.0]
    steps = await count(db, "SELECT count(*) FROM escalation_steps WHERE ticket_id <> 'S-OPEN'")
    assert steps > 0  # the closed tickets' steps that were truly due fired too


# A's response steps fall due from 08:07:30 to 08:30, its resolution steps from 09:00;
# what follows it in the queue occurred from 08:31 on. Batches hold at most 50 messages,
# so the one before L-1's (the 121st) lies wholly after 08:31.
FILLER = PAST_MONDAY + timedelta(minutes=31)


async def backlog_held_on_l1(db: asyncpg.Connection, database_url: str) -> asyncpg.Connection:
    """A's creation and 400 notes queued, with ticket L-1's row locked (the connection
    returned holds the lock) so that intake stops at L-1's note, the 121st message."""
    await migrate(db)
    await db.execute("INSERT INTO tickets (ticket_id) VALUES ('L-1')")
    lock = await asyncpg.connect(database_url)
    await lock.execute("BEGIN; SELECT 1 FROM tickets WHERE ticket_id = 'L-1' FOR UPDATE")
    backlog = [
        created("A", PAST_MONDAY),
        *(note(f"F-{n}", FILLER + timedelta(seconds=n)) for n in range(119)),
        note("L-1", FILLER + timedelta(seconds=119)),
        *(note(f"F-{n}", FILLER + timedelta(seconds=n)) for n in range(120, 400)),
    ]
    await publish_events(lines(backlog), AMQP_URL)
    return lock


async def test_after_the_bound_steps_fire_up_to_what_intake_has_read_then_the_rest(
    settings: Settings,
    broker: aio_pika.abc.AbstractChannel,
    db: asyncpg.Connection,
    database_url: str,
    logs: Logs,
) -> None:
    # Intake is held on ticket L-1's row (locked here), a few batches into the backlog.
    lock = await backlog_held_on_l1(db, database_url)
    # No hold of catch-ups: this is the rule of the read point alone (see the next test).
    bound = settings.model_copy(
        update={"startup_backlog_wait_s": 1.0, "startup_catch_up_hold_s": 0.0}
    )
    try:
        async with running(bound):

            async def read_past_a() -> bool:
                return await count(db, "SELECT count(*) FROM escalation_steps") >= 6

            await poll(read_past_a, timeout_s=30, what="A's response steps after the bound")
            (ended,) = logged(logs, "scheduler.backlog_wait_ended")
            assert ended["outcome"] == "bound"
            assert 1.0 <= ended["waited_s"] < 10
            # What intake has read up to (08:31, the batch before the locked one) bounds
            # what fires: A's response steps, none of the later ones.
            fired = await db.fetch("SELECT ticket_id, clock_key, step FROM escalation_steps")
            assert sorted((r["ticket_id"], r["clock_key"], r["step"]) for r in fired) == [
                ("A", "response", step) for step in (0.5, 0.75, 0.9, 1.0, 1.5, 2.0)
            ]
            status, ready = await get_json(f"http://127.0.0.1:{bound.http_port}/readyz")
            assert status == 200  # taking a backlog, it is ready for traffic
            assert ready["startup_backlog"]["state"] == "catching up"
            assert ready["startup_backlog"]["outcome"] == "bound"
            until = datetime.fromisoformat(ready["startup_backlog"]["fires_until"])
            assert FILLER <= until < FILLER + timedelta(seconds=119)
            await lock.execute("ROLLBACK")  # intake goes on

            async def caught_up() -> bool:
                steps = await count(
                    db, "SELECT count(*) FROM escalation_steps WHERE ticket_id = 'A'"
                )
                return bool(logged(logs, "scheduler.backlog_caught_up")) and steps == 12

            await poll(caught_up, timeout_s=60, what="the backlog taken and A's resolution steps")
            _, ready = await get_json(f"http://127.0.0.1:{bound.http_port}/readyz")
            assert ready["startup_backlog"]["state"] == "done"
    finally:
        await lock.close()  # and with it the lock, if a failure left it held


async def test_catch_ups_wait_while_intake_reads_the_past_then_fire(
    settings: Settings,
    db: asyncpg.Connection,
    database_url: str,
    logs: Logs,
) -> None:
    # As above, intake held on L-1's row; what it has read up to (08:31 on a past Monday)
    # is hours old, so every step it lets fire would be a catch-up: none fires yet.
    lock = await backlog_held_on_l1(db, database_url)
    held = settings.model_copy(
        update={"startup_backlog_wait_s": 1.0, "startup_catch_up_hold_s": 600.0}
    )
    try:
        async with running(held):

            async def holding() -> bool:
                return bool(logged(logs, "scheduler.catch_ups_held"))

            await poll(holding, timeout_s=30, what="catch-ups held after the bound")
            status, ready = await get_json(f"http://127.0.0.1:{held.http_port}/readyz")
            assert status == 200
            assert ready["startup_backlog"]["state"] == "catching up"
            assert ready["startup_backlog"]["catch_ups_held"] is True
            # A's response steps fell due before the read point: held, not fired.
            assert await count(db, "SELECT count(*) FROM escalation_steps") == 0
            await lock.execute("ROLLBACK")  # intake goes on and takes the backlog

            async def caught_up() -> bool:
                steps = await count(
                    db, "SELECT count(*) FROM escalation_steps WHERE ticket_id = 'A'"
                )
                return bool(logged(logs, "scheduler.backlog_caught_up")) and steps == 12

            await poll(caught_up, timeout_s=60, what="the backlog taken and A's steps fired")
            # Every one of them fired after the backlog was taken, as a catch-up.
            outbox = await count(db, "SELECT count(*) FROM outbox")
            assert outbox == 0, "a catch-up's notices go into digests, not out alone"
    finally:
        await lock.close()


async def test_an_empty_queue_lets_the_scheduler_start_at_once(
    logs: Logs, engine: RunningEngine, settings: Settings
) -> None:
    async def ended_wait() -> bool:
        return bool(logged(logs, "scheduler.backlog_wait_ended"))

    await poll(ended_wait, timeout_s=5, what="the wait ended")
    (ended,) = logged(logs, "scheduler.backlog_wait_ended")
    assert (ended["outcome"], ended["messages"]) == ("drained", 0)
    assert ended["waited_s"] < 1.0  # neither the bound (60 s) nor a wait on intake
    status, ready = await get_json(f"http://127.0.0.1:{settings.http_port}/readyz")
    assert status == 200
    assert ready["startup_backlog"] == {
        "state": "done", "messages_at_start": 0, "outcome": "drained", "waited_s": 0.0
    }  # fmt: skip
