"""What a fault scenario needs: a stream, its outcome known beforehand, engines, a verdict.

The outcome comes from the pure core in memory, not from the engine under test: every
ticket of the stream is closed, so each clock is final, and the steps that stand fired
at the end are the steps the final measurement of each clock reached (a step fired early
on part of a ticket's events and then undone by a late one is kept as superseded). The
check compares the store with it: every event recorded once, every clock as measured,
every step fired once, no notice twice with different ids, and the dead-letter queue
holding exactly the bad messages, each with its reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg

from engine.business_time.calendar import to_us
from engine.config import load_config
from engine.events import parse_event
from engine.intake import topology
from engine.intake.publish import publish_events
from engine.sla_clock.meter import ClockMeter
from tests.daemons import Daemon
from tests.helpers import EXAMPLE_CONFIG
from tests.services import AMQP_URL, connect_when_up, poll
from tests.streams import AHEAD_S, CPH, lines, stream

# A working Monday long past: every step of every ticket has fallen due by now.
PAST_MONDAY = datetime(2026, 6, 1, 8, tzinfo=CPH)
# The digest window of config/notices.yaml (15m on every channel): keep them alike.
DIGEST_WINDOW_S = 900
# A reading of the intake queue taking longer counts as none (the broker restarting).
QUEUE_READ_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Expected:
    """What the events say must be in the store at the end."""

    event_ids: frozenset[str]
    clocks: dict[tuple[str, str], tuple[str, float]]  # (ticket, clock) -> (state, elapsed)
    steps: frozenset[tuple[str, str, float]]  # (ticket, clock, step) standing fired


def expected_outcome(events: list[dict[str, Any]], now: datetime) -> Expected:
    """The end state of ``events`` by the pure core, measured at ``now``."""
    meter = ClockMeter(load_config(EXAMPLE_CONFIG))
    by_ticket: dict[str, list[Any]] = defaultdict(list)
    for raw in events:
        by_ticket[raw["ticket_id"]].append(parse_event(json.dumps(raw)))
    clocks: dict[tuple[str, str], tuple[str, float]] = {}
    steps: set[tuple[str, str, float]] = set()
    now_us = to_us(now)
    for ticket_id, ticket_events in by_ticket.items():
        measured = meter.measure(ticket_events, {}, now)
        assert measured is not None, ticket_id
        for clock in measured.clocks:
            assert clock.state in ("met", "breached"), "every clock of the stream stops"
            clocks[(ticket_id, clock.key)] = (clock.state, clock.elapsed.total_seconds())
            for (fraction, _tier), due in zip(clock.agreement.steps, clock.due_us, strict=False):
                if due is not None and due <= now_us:
                    steps.add((ticket_id, clock.key, fraction))
    return Expected(frozenset(str(e["event_id"]) for e in events), clocks, frozenset(steps))


@dataclass
class Row:
    """One line of the table: what a scenario did and what it found."""

    scenario: str
    events: int
    faults: int
    lost: int = 0
    doubled: int = 0
    wrong: int = 0  # clocks or steps not as the events say
    dead_letter_mismatch: int = 0
    recovery_s: float = 0.0  # the longest, from a fault's end to the next batch committed
    # Recipients sent more than one message in one digest window (the backlog scenario).
    over_budget: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.doubled or self.wrong or self.dead_letter_mismatch
            or self.over_budget
        )  # fmt: skip


HEADER = ("scenario", "events", "faults", "lost", "doubled", "wrong", "dead-letter mismatch",
          "recovery s", "notes")  # fmt: skip


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        notes = ", ".join(f"{k} {v}" for k, v in r.notes.items())
        cells = (r.scenario, f"{r.events:,}", r.faults, r.lost, r.doubled, r.wrong,
                 r.dead_letter_mismatch, f"{r.recovery_s:.1f}", notes)  # fmt: skip
        out.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(out)


async def empty_queues() -> None:
    """The intake and dead-letter queues emptied (declared first if they are not yet)."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        declared = await topology.declare(channel)
        await declared.intake.purge()
        await declared.dead.purge()


class Stage:
    """A scenario's engines, database and stream, with the faults it injects."""

    def __init__(self, database_url: str, workdir: Path, events: list[dict[str, Any]]) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.events = events
        self.engines: list[Daemon] = []
        self.env = {
            **os.environ,
            "SLA_ENGINE_AMQP_URL": AMQP_URL,
            "SLA_ENGINE_DATABASE_URL": database_url,
            "SLA_ENGINE_CONFIG_DIR": str(EXAMPLE_CONFIG),
            "SLA_ENGINE_DB_RETRY_MAX_S": "0.5",
            "SLA_ENGINE_GAUGES_REFRESH_S": "3600",
            "SLA_ENGINE_MAX_AHEAD_S": str(AHEAD_S),
        }
        self.recovery_s = 0.0
        self.db: asyncpg.Connection | None = None
        self.watch: aio_pika.abc.AbstractConnection | None = None  # the queue's watcher
        # Events a second that `make bench-intake` drained right before, for comparison.
        self.bench_intake_events_s: float | None = None

    async def __aenter__(self) -> Stage:
        await empty_queues()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for engine in self.engines:
            engine.kill()
        if self.db is not None:
            self.db.terminate()
        if self.watch is not None and not self.watch.is_closed:
            await self.watch.close()

    async def start(self) -> Daemon:
        engine = Daemon(self.env, self.workdir / f"engine-{len(self.engines)}.log")
        self.engines.append(engine)
        await engine.started()
        return engine

    async def count(self, sql: str) -> int | None:
        """A count from the store; None while it cannot be read (away, or not migrated)."""
        try:
            if self.db is None or self.db.is_closed():
                self.db = await asyncpg.connect(
                    self.database_url, server_settings={"application_name": "fault harness"}
                )
            return int(await self.db.fetchval(sql))
        except asyncpg.UndefinedTableError:  # not migrated yet
            return None
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            # Cut or stopped with the engine's: connect again at the next poll.
            if self.db is not None:
                self.db.terminate()
            self.db = None
            return None

    async def recorded(self) -> int:
        return await self.count("SELECT count(*) FROM events") or 0

    async def queued(self) -> int | None:
        """Messages waiting in the intake queue (a passive declare: cheap); None while the
        broker does not answer."""
        try:
            return await asyncio.wait_for(self._queued(), QUEUE_READ_TIMEOUT_S)
        except (OSError, RuntimeError, TimeoutError, aio_pika.exceptions.AMQPError):
            # Restarted or away (aiormq says "closed" with a RuntimeError): a broken
            # connection, closed by the broker if not yet; connect again at the next look.
            self.watch = None
            return None

    async def _queued(self) -> int:
        if self.watch is None or self.watch.is_closed:
            # Not robust: a robust channel answers a passive declare from its cache.
            self.watch = await aio_pika.connect(AMQP_URL)
        channel = await self.watch.channel()
        try:
            queue = await channel.declare_queue(topology.QUEUE, passive=True)
            return int(queue.declaration_result.message_count or 0)
        finally:
            await channel.close()

    async def until_recorded(self, n: int, timeout_s: float = 300) -> None:
        async def enough() -> bool:
            for engine in self.engines:
                assert engine.process.poll() is None or engine.killed, engine.log_path.read_text()
            # Counting a million rows every 50 ms would keep one of two cores busy and slow
            # the drain it measures: while messages wait in the queue, not all are recorded.
            # A queue that cannot be read now (the broker restarting, or slow to answer)
            # says nothing about it being empty: look again rather than count.
            queued = await self.queued()
            if queued is None or queued > 0:
                return False
            return await self.recorded() >= n

        await poll(enough, timeout_s, what=f"{n:,} events recorded")

    async def recovered_after(self, fault_end: float, timeout_s: float = 120) -> None:
        """Wait until a batch commits after the fault; the longest wait is the recovery."""
        counted: int | None = None

        async def read() -> bool:  # the count before, once the store answers again
            nonlocal counted
            counted = await self.count("SELECT count(*) FROM events")
            return counted is not None

        await poll(read, timeout_s, what="the store to answer again")
        assert counted is not None
        before = counted

        async def moving() -> bool:
            return await self.recorded() > before or before >= len(self.events)

        await poll(moving, timeout_s, what="intake to record again after the fault")
        self.recovery_s = max(self.recovery_s, time.monotonic() - fault_end)

    async def publish(self, events: list[dict[str, Any]]) -> None:
        await publish_events(lines(events), AMQP_URL)

    async def settled(self, timeout_s: float = 300) -> None:
        """Every event recorded and every due step fired."""
        await self.until_recorded(len(self.events), timeout_s)

        async def fired() -> bool:
            return await self.count("SELECT count(*) FROM clocks WHERE next_due_at <= now()") == 0

        await poll(fired, timeout_s, what="every due step fired")

    async def verdict(self, row: Row, expected: Expected) -> Row:
        """Compare the store with ``expected`` into ``row``."""
        db = await connect_when_up(self.database_url)
        try:
            ids = [str(r["event_id"]) for r in await db.fetch("SELECT event_id FROM events")]
            row.lost = len(expected.event_ids - set(ids))
            row.doubled = len(ids) - len(set(ids))
            clocks = {(r["ticket_id"], r["clock_key"]): (r["state"], r["elapsed_s"])
                      for r in await db.fetch("SELECT * FROM clocks")}  # fmt: skip
            wrong_clocks = sum(
                1 for key, (state, elapsed) in expected.clocks.items()
                if key not in clocks or clocks[key][0] != state
                or abs(clocks[key][1] - elapsed) > 1e-3
            ) + len(set(clocks) - set(expected.clocks))  # fmt: skip
            steps = [
                (r["ticket_id"], r["clock_key"], r["step"])
                for r in await db.fetch(
                    "SELECT ticket_id, clock_key, step FROM escalation_steps WHERE status = 'fired'"
                )
            ]
            row.doubled += len(steps) - len(set(steps))
            wrong_steps = len(expected.steps ^ set(steps))
            row.wrong = wrong_clocks + wrong_steps
            if row.wrong:  # what differs, for the report
                row.notes["wrong clocks"] = wrong_clocks
                row.notes["missing steps"] = sorted(expected.steps - set(steps))[:3]
                row.notes["extra steps"] = sorted(set(steps) - expected.steps)[:3]
            # A notice is known by ticket, clock, step, channel and recipient: one id each.
            row.doubled += int(await db.fetchval(
                "SELECT count(*) FROM (SELECT 1 FROM outbox"
                " GROUP BY ticket_id, clock_key, step, channel, recipient"
                " HAVING count(DISTINCT notice_id) > 1) AS twice"))  # fmt: skip
            row.notes.setdefault("steps", len(steps))
            row.notes.setdefault("notices", int(await db.fetchval("SELECT count(*) FROM outbox")))
        finally:
            await db.close()
        row.recovery_s = self.recovery_s
        return row


async def dead_letters() -> dict[str, str]:
    """The dead-letter queue's messages, by message id: their reasons."""
    found: dict[str, str] = {}
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.DEAD_LETTER_QUEUE, passive=True)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            reason = (message.headers or {}).get(topology.REASON_HEADER, "")
            found[str(message.message_id)] = str(reason)
    return found


def the_stream(events: int, seed: int) -> list[dict[str, Any]]:
    """At least ``events`` events of closed tickets, created over one past working day."""
    prefix = f"F{seed}"
    tickets = max(1, events // 5)  # 5.6 events a ticket on average: some to spare
    made = stream(tickets, seed=seed, prefix=prefix, day=PAST_MONDAY)
    sizes: dict[str, int] = defaultdict(int)
    for one in made:
        sizes[one["ticket_id"]] += 1
    kept, total = set(), 0
    for n in range(tickets):  # whole tickets only, so that every one of them is closed
        if total >= events:
            break
        kept.add(f"{prefix}-{n}")
        total += sizes[f"{prefix}-{n}"]
    return [one for one in made if one["ticket_id"] in kept]


def chunks(events: list[dict[str, Any]], parts: int) -> list[list[dict[str, Any]]]:
    size = -(-len(events) // parts)
    return [events[i : i + size] for i in range(0, len(events), size)]


async def messages_in_digest_windows(database_url: str) -> tuple[int, int, bool]:
    """Messages written per recipient, channel and digest window: (the most in one
    window, the windows with more than one, whether digests are stored at all).

    A message is an outbox row (a notice sent alone, counted when it was written) or a
    row of ``digests`` (one message, however many notices it gathers, counted when it
    is sent: at the end of its budget window). Windows here are DIGEST_WINDOW_S long
    from the epoch; no budget window of ``config/notices.yaml`` is shorter, and a
    recipient's budget windows follow one another, so within budget no two messages
    of one recipient and channel fall in one of them.
    """
    db = await connect_when_up(database_url)
    try:
        digests = await db.fetchval("SELECT to_regclass('digests') IS NOT NULL")
        messages = "SELECT channel, recipient, created_at AS at FROM outbox"
        if digests:
            messages += " UNION ALL SELECT channel, recipient, send_at FROM digests"
        row = await db.fetchrow(
            f"""
            SELECT coalesce(max(n), 0) AS most, count(*) FILTER (WHERE n > 1) AS over
            FROM (
                SELECT count(*) AS n FROM ({messages}) AS m
                GROUP BY channel, recipient, floor(extract(epoch FROM at) / $1)
            ) AS per_window
            """,
            DIGEST_WINDOW_S,
        )
    finally:
        await db.close()
    assert row is not None
    return int(row["most"]), int(row["over"]), bool(digests)
