"""Intake throughput: drain a backlog of ticket events, against this machine's raw ceiling.

Run: ``make bench-intake`` (or ``.venv/bin/python -m benchmarks.intake [--tickets N]
[--rounds N]``).

1. Raw ceiling: the same messages, consumed with aio-pika in batches (the engine's batch
   size and prefetch) with one multi-ack and inserted into one table with asyncpg, no
   engine logic.
2. Engine: the messages published to ``helpdesk.tickets`` while no engine runs, then
   ``sla-engine run`` started as a process; timed from its ``engine.started`` log line
   until every event is in the database.
3. The CPU time each spent per event over its drain (this process's for the raw
   ceiling, the engine processes' from ``/proc``), and the share of the drain the engine
   was on a CPU: a figure that moves less from day to day than the ratio of the rates,
   whose ceiling is mostly the database's speed and the engine's mostly its own CPU.

This machine's speed wanders from minute to minute: the same code drained at 0.40 and
at 0.64 of a ceiling measured once before it, in two runs back to back (2026-12-04).
So each of several rounds (``--rounds``) sets an engine drain against the mean of the
raw ceilings measured just before and just after it, and the median of the rounds'
ratios is the figure.

Uses the local RabbitMQ and PostgreSQL (``SLA_ENGINE_AMQP_URL``, ``SLA_ENGINE_DATABASE_URL``
override them), a schema of its own in the database and a queue of its own for step 1;
the intake queues are emptied first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

import aio_pika
import asyncpg

from engine.intake import topology
from engine.intake.publish import publish_events
from engine.settings import Settings

REPO = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("SLA_ENGINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get(
    "SLA_ENGINE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/sla_engine"
)
RAW_QUEUE = "sla-engine.bench.raw"
# The raw ceiling consumes with the engine's own batch size and prefetch.
BATCH = Settings().batch_size
PREFETCH = Settings().prefetch
NAMESPACE = UUID("8f0e8a56-0a43-4c43-8f3e-1c2b3a4d5e6f")
SERVICES = {
    "buf": ["esdh", "skole-it-aula"],
    "okf": ["opus-loen", "esdh"],
    "sof": ["omsorgssystem"],
    "tmf": ["print", "esdh"],
    "kff": ["pc-arbejdsplads"],
}


def make_events(tickets: int, seed: int = 42) -> list[bytes]:
    """Creation, response, in progress and resolution of each ticket over one week."""
    rng = random.Random(seed)
    # A week years ahead: intake is measured alone, without the scheduler firing (and
    # notifying) every step of a week long past; benchmarks/timers.py measures firing.
    monday = date(date.today().year + 4, 11, 20)
    monday += timedelta(days=(7 - monday.weekday()) % 7)
    start = datetime(monday.year, monday.month, monday.day, 8, tzinfo=ZoneInfo("Europe/Copenhagen"))
    events = []
    for n in range(tickets):
        ticket = f"B-{n}"
        department = rng.choice(sorted(SERVICES))
        at = start + timedelta(seconds=rng.randrange(5 * 24 * 3600))
        created: dict[str, object] = {
            "department": department,
            "service": rng.choice(SERVICES[department]),
            "priority": rng.choice(["P1", "P2", "P3", "P4"]),
            "subject": f"Sag {ticket}",
            "requester": {"name": "Bruger"},
        }
        steps: list[tuple[str, dict[str, object]]] = [
            ("ticket.created", created),
            ("ticket.responded", {}),
            ("ticket.status_changed", {"status": "in_progress"}),
            ("ticket.status_changed", {"status": "resolved"}),
        ]
        for seq, (type_, fields) in enumerate(steps):
            at += timedelta(minutes=rng.randint(1, 240))
            event: dict[str, object] = {
                "schema_version": 1,
                "event_id": str(uuid5(NAMESPACE, f"{ticket}/{seq}")),
                "type": type_,
                "ticket_id": ticket,
                "occurred_at": at.isoformat(),
                "channel": "web",
            }
            event.update(fields)
            events.append((at, event))
    events.sort(key=lambda pair: pair[0])
    return [json.dumps(event).encode() for _, event in events]


class Drain(NamedTuple):
    """A drain's events a second, its seconds, and the CPU seconds its consumers spent."""

    rate: float
    seconds: float
    cpu_s: float

    def cpu_us_per_event(self, events: int) -> float:
        return self.cpu_s / events * 1e6


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime, the 14th and 15th fields of stat(5), after the command's ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def raw_ceiling(bodies: list[bytes], schema: str) -> Drain:
    """Events a second with no engine logic: consume, insert one row each, multi-ack."""
    connection = await aio_pika.connect_robust(AMQP_URL)
    db = await asyncpg.connect(f"{DATABASE_URL}?search_path={schema}")
    try:
        channel = await connection.channel(publisher_confirms=True)
        await channel.queue_delete(RAW_QUEUE)
        queue = await channel.declare_queue(
            RAW_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for start in range(0, len(bodies), BATCH):
            chunk = bodies[start : start + BATCH]
            publishing = (
                channel.default_exchange.publish(
                    aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=RAW_QUEUE,
                )
                for body in chunk
            )
            await asyncio.gather(*publishing)
        await db.execute("CREATE TABLE raw_events (event_id uuid PRIMARY KEY, payload jsonb)")
        await channel.set_qos(prefetch_count=PREFETCH)
        inbox: asyncio.Queue[aio_pika.abc.AbstractIncomingMessage] = asyncio.Queue()
        await queue.consume(inbox.put)
        began, done, cpu = time.perf_counter(), 0, time.process_time()
        while done < len(bodies):
            batch = [await inbox.get()]
            while len(batch) < BATCH and not inbox.empty():
                batch.append(inbox.get_nowait())
            ids = [json.loads(m.body)["event_id"] for m in batch]
            async with db.transaction():
                await db.execute(
                    "INSERT INTO raw_events SELECT * FROM unnest($1::uuid[], $2::jsonb[])"
                    " ON CONFLICT DO NOTHING",
                    ids,
                    [m.body.decode() for m in batch],
                )
            await batch[-1].ack(multiple=True)
            done += len(batch)
        seconds = time.perf_counter() - began
        cpu = time.process_time() - cpu
        await channel.queue_delete(RAW_QUEUE)
        await db.execute("DROP TABLE raw_events")  # the next raw drain starts empty too
        return Drain(len(bodies) / seconds, seconds, cpu)
    finally:
        await db.close()
        await connection.close()


async def _ready(channel: aio_pika.abc.AbstractChannel) -> int:
    """Messages waiting in the intake queue, not yet delivered to the engine."""
    queue = await channel.declare_queue(topology.QUEUE, passive=True)
    return queue.declaration_result.message_count or 0


async def engine_rate(bodies: list[bytes], schema: str, engines: int) -> Drain:
    """``sla-engine run`` draining the events as a backlog."""
    connection = await aio_pika.connect_robust(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for queue in (topology.QUEUE, topology.DEAD_LETTER_QUEUE):
            await channel.queue_delete(queue)
    await publish_events(bodies, AMQP_URL)
    database_url = f"{DATABASE_URL}?search_path={schema}"
    env = {
        **os.environ,
        "SLA_ENGINE_AMQP_URL": AMQP_URL,
        "SLA_ENGINE_DATABASE_URL": database_url,
        "SLA_ENGINE_CONFIG_DIR": str(REPO / "config"),
        "SLA_ENGINE_HTTP_PORT": "0",
        # the week is years ahead: the engine takes it only when told to
        "SLA_ENGINE_MAX_AHEAD_S": str(6 * 366 * 24 * 3600),
    }
    db = await asyncpg.connect(database_url)
    files = contextlib.ExitStack()
    logs = [files.enter_context(tempfile.TemporaryFile("w+")) for _ in range(engines)]  # noqa: SIM115
    command = [str(Path(sys.executable).with_name("sla-engine")), "run"]
    processes = [
        subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs
    ]

    def running() -> None:
        assert all(p.poll() is None for p in processes), "an engine exited"

    try:
        # Timed from the first engine that starts consuming, which starts the drain.
        began = None
        while began is None:
            running()
            for log in logs:
                log.seek(0)
                if '"engine.started"' in log.read():
                    began = time.perf_counter()
                    cpu = sum(cpu_seconds(p.pid) for p in processes)
            await asyncio.sleep(0.01)
        # Counting 200,000 rows costs the database real CPU on this 2-core machine, so
        # watch the broker's queue (cheap) until it is empty, and only then the table.
        async with await aio_pika.connect(AMQP_URL) as watcher:
            # A plain connection: a passive declare on a robust channel never returned.
            watch = await watcher.channel()
            while await _ready(watch):
                running()
                await asyncio.sleep(0.1)
        while await db.fetchval("SELECT count(*) FROM events") < len(bodies):
            running()
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - began
        cpu = sum(cpu_seconds(p.pid) for p in processes) - cpu
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
        files.close()
        await db.close()
    return Drain(len(bodies) / seconds, seconds, cpu)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument(
        "--engines",
        type=int,
        default=1,
        help="engine processes consuming at once (DESIGN's "
        "scale-out: competing consumers); the raw ceiling stays one process",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="engine drains, each against the raw ceilings measured just before and after it",
    )
    args = parser.parse_args()
    bodies = make_events(args.tickets)
    events = len(bodies)
    admin = await asyncpg.connect(DATABASE_URL)
    schemas: list[str] = []

    async def new_schema() -> str:
        schemas.append(f"bench_{int(time.time())}_{len(schemas)}")
        await admin.execute(f'CREATE SCHEMA "{schemas[-1]}"')
        return schemas[-1]

    try:
        print(f"{events:,} events for {args.tickets:,} tickets, {args.rounds} rounds")
        raw_schema = await new_schema()
        raws = [await raw_ceiling(bodies, raw_schema)]
        label = f"{args.engines} x sla-engine run" if args.engines > 1 else "sla-engine run"
        ratios = []
        for round_ in range(1, args.rounds + 1):
            engine = await engine_rate(bodies, await new_schema(), args.engines)
            raws.append(await raw_ceiling(bodies, raw_schema))
            before, after = raws[-2], raws[-1]
            ceiling = (before.rate + after.rate) / 2
            ratios.append(engine.rate / ceiling)
            raw_cpu = (before.cpu_s + after.cpu_s) / 2 / events * 1e6
            busy = engine.cpu_s / (engine.seconds * args.engines)
            print(
                f"round {round_}: raw ceiling (aio-pika + asyncpg, batches of {BATCH})"
                f" {before.rate:,.0f} before and {after.rate:,.0f} after; engine ({label},"
                f" drained in {engine.seconds:.1f} s) {engine.rate:,.0f} events/s:"
                f" {ratios[-1]:.2f} of the ceiling; CPU per event: raw ceiling"
                f" {raw_cpu:.0f} µs, engine {engine.cpu_us_per_event(events):.0f} µs"
                f" (on a CPU {busy:.0%} of its drain)"
            )
        listed = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        print(
            f"engine / raw ceiling: {statistics.median(ratios):.2f}"
            f" (median of {len(ratios)} rounds: {listed})"
        )
    finally:
        for schema in schemas:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
