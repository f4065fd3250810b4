"""The engine's own CPU per event: parse, check and record bench-intake's events, no broker.

Run: ``make bench-recording`` (or ``.venv/bin/python -m benchmarks.recording [--tickets N]
[--rounds N]``).

bench-intake's ratio moves with the machine: the same commit drained at 0.41 and at 0.66
of the raw ceiling on one afternoon (2026-12-04), and the engine's CPU per event went
from 157 to 216 µs. Most of that CPU is the engine's own work, which this measures
alone, as the daemon does it: the same 200,000 events (``benchmarks.intake``), in the
daemon's batch size, each message parsed and checked against the configuration, each
batch recorded by the ``Recorder`` through the PostgreSQL recording adapter (its
tickets locked, its clocks measured and written) with the daemon's history cache and
its collector thresholds (``tune_gc`` with the prefetch). What it leaves out is
consuming from RabbitMQ, which bench-intake's engine drains count, and keeping two
batches in flight.

Each round records into a schema of its own and prints this process's CPU time per
event (parsing and checking apart), the collector's share of it, and events a second
(one batch at a time, so slower than the daemon); the last line is the median CPU per
event. Uses the local PostgreSQL (``SLA_ENGINE_DATABASE_URL`` overrides it).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from datetime import UTC, datetime
from typing import Any, NamedTuple

import asyncpg

from benchmarks.intake import DATABASE_URL, REPO, make_events
from engine.cli.shared import tune_gc
from engine.config import load_config
from engine.events import parse_event
from engine.intake.recorder import Recorder
from engine.settings import Settings
from engine.sla_clock.meter import ClockMeter
from engine.store.connection import server_settings
from engine.store.migrate import migrate
from engine.store.postgres.recording import PostgresRecordingStore


class Round(NamedTuple):
    """One round's CPU seconds (all, parsing and checking, the collector's) and wall time."""

    cpu_s: float
    parse_s: float
    gc_s: float
    seconds: float


class CollectorClock:
    """The time the cyclic garbage collector runs, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


async def record_all(bodies: list[bytes], schema: str, settings: Settings) -> Round:
    """Record every event, a batch at a time, into ``schema``."""
    url = f"{DATABASE_URL}?search_path={schema}"
    pool = await asyncpg.create_pool(
        url, server_settings=server_settings(url, "pool"), min_size=1, max_size=2
    )
    try:
        async with pool.acquire() as connection:
            await migrate(connection)
        meter = ClockMeter(load_config(REPO / "config"))
        recorder = Recorder(
            meter,
            PostgresRecordingStore(pool),
            cache_size=settings.history_cache_events,
            max_events_per_ticket=settings.max_events_per_ticket,
        )
        collector = CollectorClock()
        gc.callbacks.append(collector)
        now = datetime.now(UTC)
        began, cpu, parse = time.perf_counter(), time.process_time(), 0.0
        try:
            for start in range(0, len(bodies), settings.batch_size):
                chunk = bodies[start : start + settings.batch_size]
                parsing = time.process_time()
                events = [parse_event(body) for body in chunk]
                refused = [event for event in events if meter.refusal(event) is not None]
                parse += time.process_time() - parsing
                assert not refused, "the benchmark's events all name what the config knows"
                outcome = await recorder.record(events, now, chunk, meter)
                assert outcome.recorded == len(chunk), "every event is new"
        finally:
            gc.callbacks.remove(collector)
        return Round(
            time.process_time() - cpu, parse, collector.seconds, time.perf_counter() - began
        )
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = Settings()
    bodies = make_events(args.tickets)
    events = len(bodies)
    tune_gc(settings.prefetch)  # as the daemon does at start
    admin = await asyncpg.connect(DATABASE_URL)
    print(f"{events:,} events for {args.tickets:,} tickets, {args.rounds} rounds")
    per_event = []
    try:
        for round_ in range(1, args.rounds + 1):
            schema = f"bench_recording_{int(time.time())}_{round_}"
            await admin.execute(f'CREATE SCHEMA "{schema}"')
            try:
                result = await record_all(bodies, schema, settings)
            finally:
                await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
            per_event.append(result.cpu_s / events * 1e6)
            print(
                f"round {round_}: {per_event[-1]:.0f} µs of CPU an event"
                f" (parsing and checking {result.parse_s / events * 1e6:.0f} µs, the"
                f" collector {result.gc_s / result.cpu_s:.0%}),"
                f" {events / result.seconds:,.0f} events/s one batch at a time"
            )
    finally:
        await admin.close()
    listed = ", ".join(f"{value:.0f}" for value in per_event)
    print(
        f"CPU per event: {statistics.median(per_event):.0f} µs"
        f" (median of {len(per_event)} rounds: {listed})"
    )


if __name__ == "__main__":
    asyncio.run(main())
