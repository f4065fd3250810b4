"""The worklist with a million open clocks: p50 / p99 of ``GET /tickets`` per filter.

Run: ``make bench-worklist`` (or ``.venv/bin/python -m benchmarks.worklist [--open-clocks N]``).

1. Records open tickets through the engine's own recorder (no broker) into a schema of
   its own, until ``--open-clocks`` clocks are open (default 1,000,000): tickets created
   over the last three weeks, in the example configuration's departments, most of them
   assigned (half of those to a team) and answered, some commented, some waiting for the
   requester, a few raised in priority. Their clocks (resolution, the open update cycle,
   the OLA's) are the engine's measurements, so some are breached and some paused.
2. Serves the engine's HTTP port on that schema, in this process, and pages through the
   first five pages of each filter (a cursor each), ``--rounds`` times, timing the first
   and the fifth: the store's query alone, and the whole answer (the query, the page's
   events read, its tickets measured) as a client sees it.
3. Prints p50 / p99 of each, per filter, and the worst query p99 against the goal of
   50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple
from uuid import UUID, uuid5

import aiohttp
import asyncpg

from benchmarks.timers import percentile
from engine.config import load_versioned
from engine.events import parse_event
from engine.events.fields import SCHEMA_VERSION
from engine.intake.recorder import Recorder
from engine.ops.http_port import HttpPort, Parts
from engine.ops.worklist import worklist_query
from engine.running import ConfigInForce, RunningConfig
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore

REPO = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "SLA_ENGINE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/sla_engine"
)
NAMESPACE = UUID("0c7d6f1e-5b2a-4c8e-9d3f-2a1b0c9d8e7f")
# Department -> (services it ordered, its customer team), from the example configuration.
DEPARTMENTS = {
    "buf": (["esdh", "skole-it-aula", "pc-arbejdsplads"], "team-buf"),
    "sof": (["omsorgssystem", "mobiltelefoni"], "team-sof"),
    "okf": (["opus-loen", "datavarehus", "esdh"], "team-okf"),
    "tmf": (["esdh", "print"], "team-tmf"),
    "kff": (["pc-arbejdsplads"], "team-kff"),
}
FUNCTIONS = ["pc-software", "server-network", "helpdesk"]
# The filters an agent's frontend uses, each with a value this data has.
FILTERS: list[tuple[str, dict[str, str]]] = [
    ("(none)", {}),
    ("department", {"department": "okf"}),
    ("service", {"service": "opus-loen"}),
    ("priority", {"priority": "P1"}),
    ("function", {"function": "server-network"}),
    ("team", {"team": "team-sof"}),
    ("metric", {"metric": "update"}),
    ("state=running", {"state": "running"}),
    ("state=paused", {"state": "paused"}),
    ("state=breached", {"state": "breached"}),
    ("breaching_within", {"breaching_within": "1h"}),
    ("breached=true", {"breached": "true"}),
    ("breached=false", {"breached": "false"}),
    ("scope=all", {"scope": "all"}),
    ("department+metric+breached", {"department": "sof", "metric": "resolution",
                                    "breached": "false"}),
]  # fmt: skip
BATCH = 500


def ticket_events(n: int, now: datetime, rng: random.Random) -> list[str]:
    """One open ticket's events, created within the last three weeks."""
    ticket = f"W-{n}"
    department = rng.choice(sorted(DEPARTMENTS))
    services, team = DEPARTMENTS[department]
    at = now - timedelta(seconds=rng.uniform(600, 21 * 24 * 3600))
    seq = 0
    events: list[dict[str, object]] = []

    def add(type_: str, **fields: object) -> None:
        nonlocal seq, at
        event = {
            "schema_version": SCHEMA_VERSION,
            "event_id": str(uuid5(NAMESPACE, f"{ticket}/{seq}")),
            "type": type_,
            "ticket_id": ticket,
            "occurred_at": at.isoformat(),
            "channel": rng.choice(["web", "email", "phone"]),
            **fields,
        }
        events.append(event)
        seq += 1
        at = min(now, at + timedelta(minutes=rng.randint(1, 180)))

    add(
        "ticket.created",
        department=department,
        service=rng.choice(services),
        priority=rng.choices(["P1", "P2", "P3", "P4"], weights=[2, 10, 50, 38])[0],
        subject=f"Sag {ticket}",
        requester={"name": "Bruger"},
    )
    if rng.random() < 0.85:
        assigned = {"team": team} if rng.random() < 0.5 else {}
        add("ticket.assigned", function=rng.choice(FUNCTIONS), **assigned)
    if rng.random() < 0.8:
        add("ticket.responded")
        if rng.random() < 0.4:
            add("ticket.commented", visibility="public", body="Vi arbejder på sagen.")
    if rng.random() < 0.05:
        add("ticket.priority_changed", priority="P2")
    if rng.random() < 0.15:
        add("ticket.status_changed", status="pending_customer")
    return [json.dumps(event) for event in events]


def batches(first: int, tickets: int, now: datetime, seed: int) -> Iterator[list[str]]:
    """Whole tickets' events, ``first`` the number of the first, about ``BATCH`` at a time."""
    rng = random.Random(seed + first)
    batch: list[str] = []
    for n in range(first, first + tickets):
        batch.extend(ticket_events(n, now, rng))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def open_clocks(connection: asyncpg.Connection | asyncpg.Pool) -> int:
    count: int = await connection.fetchval("SELECT count(*) FROM clocks WHERE stopped_at IS NULL")
    return count


async def migrated(database_url: str) -> None:
    """The schema's tables, or a kept schema's with the migrations written since."""
    connection = await asyncpg.connect(database_url)
    try:
        await migrate(connection)
    finally:
        await connection.close()


async def load(database_url: str, running: RunningConfig, open_target: int, seed: int) -> int:
    """Record tickets until ``open_target`` clocks are open; the tickets recorded."""
    connection = await asyncpg.connect(database_url)
    try:
        recorder = Recorder(running.meter(), PostgresRecordingStore(connection))
        now = datetime.now(UTC)
        began, tickets, chunk = time.perf_counter(), 0, 20_000
        opened = await open_clocks(connection)
        while opened < open_target:
            # Enough tickets for what is missing, at the clocks per ticket seen so far.
            per_ticket = opened / tickets if tickets else 3.0
            more = max(100, min(chunk, int((open_target - opened) / per_ticket) + 1))
            for bodies in batches(tickets, more, now, seed):
                events = [parse_event(body) for body in bodies]
                await recorder.record(events, now, [body.encode() for body in bodies])
            tickets += more
            opened = await open_clocks(connection)
            print(
                f"  {tickets:,} tickets, {opened:,} open clocks,"
                f" {time.perf_counter() - began:.0f} s",
                flush=True,
            )
        await connection.execute("ANALYZE")
        return tickets
    finally:
        await connection.close()


class Timings(NamedTuple):
    """One filter's times in ms, of the first page and of the fifth (a cursor deep in)."""

    name: str
    listed: int  # rows on the first page
    query: tuple[list[float], list[float]]  # the store's query alone
    answer: tuple[list[float], list[float]]  # the whole GET /tickets, as a client sees it


async def measure(port: HttpPort, reads: PostgresReads, rounds: int) -> list[Timings]:
    """Each filter's first and fifth page, ``rounds`` times each."""
    base = f"http://127.0.0.1:{port.port}/tickets"
    found = []
    async with aiohttp.ClientSession() as session:
        for name, params in FILTERS:
            query: tuple[list[float], list[float]] = ([], [])
            answer: tuple[list[float], list[float]] = ([], [])
            listed = 0
            for _ in range(rounds):
                cursor: str | None = None
                for page in range(5):
                    asked = {**params, **({"cursor": cursor} if cursor else {})}
                    timed = {0: 0, 4: 1}.get(page)
                    if timed is not None:
                        began = time.perf_counter()
                        await reads.worklist(worklist_query(asked, list(asked), datetime.now(UTC)))
                        query[timed].append((time.perf_counter() - began) * 1000)
                    began = time.perf_counter()
                    async with session.get(base, params=asked) as response:
                        if response.status != 200:
                            raise SystemExit(f"{name}: {response.status} {await response.text()}")
                        body = await response.json()
                    if timed is not None:
                        answer[timed].append((time.perf_counter() - began) * 1000)
                    listed = listed or len(body["items"])
                    cursor = body["next_cursor"]
                    if cursor is None:  # a small load: this filter has no fifth page
                        break
            found.append(Timings(name, listed, query, answer))
    return found


def figures(values: list[float]) -> str:
    if not values:
        return f"{'-':>6} / {'-':>6}"
    return f"{percentile(values, 0.5):6.1f} / {percentile(values, 0.99):6.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open-clocks", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=40, help="requests per filter and page")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the schema for a look")
    parser.add_argument(
        "--schema", help="measure a schema kept by an earlier run (--keep) instead of loading"
    )
    args = parser.parse_args()
    running = RunningConfig(ConfigInForce(load_versioned(REPO / "config"), datetime.now(UTC)))
    schema = args.schema or f"bench_worklist_{int(time.time())}"
    admin = await asyncpg.connect(DATABASE_URL)
    if not args.schema:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    database_url = f"{DATABASE_URL}?search_path={schema}"
    pool = None
    try:
        await migrated(database_url)
        if not args.schema:
            began = time.perf_counter()
            tickets = await load(database_url, running, args.open_clocks, args.seed)
            print(f"recorded {tickets:,} open tickets in {time.perf_counter() - began:.0f} s")
        pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
        print(f"{await open_clocks(pool):,} open clocks in schema {schema}")
        reads = PostgresReads(pool)
        port = HttpPort(Parts(running, database_url, tickets=reads), "127.0.0.1", 0)
        await port.start()
        try:
            results = await measure(port, reads, args.rounds)
        finally:
            await port.stop()
        print(
            f"\n{'p50 / p99 ms':<28} {'rows':>4}  {'query, page 1':>15}  {'query, page 5':>15}"
            f"  {'answer, page 1':>15}  {'answer, page 5':>15}"
        )
        for t in results:
            print(
                f"{t.name:<28} {t.listed:>4}  {figures(t.query[0])}  {figures(t.query[1])}"
                f"  {figures(t.answer[0])}  {figures(t.answer[1])}"
            )
        for page, label in ((0, "first"), (1, "fifth")):
            timed = [t for t in results if t.query[page]]
            if not timed:
                continue
            worst = max(timed, key=lambda t: percentile(t.query[page], 0.99))
            print(
                f"worst query p99, {label} page: {percentile(worst.query[page], 0.99):.1f} ms"
                f" ({worst.name}); goal: 50 ms or less for each filter"
            )
    finally:
        if pool is not None:
            await pool.close()
        if not (args.keep or args.schema):
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        else:
            print(f"schema kept: {schema} (DROP SCHEMA {schema} CASCADE when done)")
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
