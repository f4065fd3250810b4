"""Firing lateness with a million open clocks: due instant to fired, p50 / p99 / max.

Run: ``make bench-timers`` (or ``.venv/bin/python -m benchmarks.timers [--clocks N]``).

1. Loads ``--clocks`` open clocks (default 1,000,000) straight into a schema of its own
   with COPY, their first steps due spread over the hour after ``--lead-s`` seconds
   from now, plus ``--stream`` clocks (default 3,000) falling due within the first minute.
2. Starts ``sla-engine run`` on that schema before the first instant, lets it fire for
   ``--window-s`` seconds (default 75), and reads each step's lateness (fired_at minus
   due_at) from ``escalation_steps``, for the steps due inside the window.
3. Prints p50, p99 and max lateness, the steps fired, and the engine's peak RSS (VmHWM).

The benchmark's department reaches its people over AMQP only, so every step's notice
goes through the outbox to ``helpdesk.escalations`` (confirmed, no queue bound).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import yaml
from prometheus_client.parser import text_string_to_metric_families

from engine.settings import Settings
from engine.store.migrate import migrate
from engine.store.postgres.recording import CLOCK_COLUMNS

REPO = Path(__file__).resolve().parent.parent
AMQP_URL = os.environ.get("SLA_ENGINE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get(
    "SLA_ENGINE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/sla_engine"
)
STEPS = [0.5, 0.75, 0.9, 1.0, 1.5, 2.0]
TIERS = ["operational", "operational", "tactical", "tactical", "strategic", "strategic"]
TARGET_S = 4 * 3600.0


def bench_config(folder: Path) -> Path:
    """The example configuration, with ØKF's contacts on the AMQP bus only."""
    target = folder / "config"
    shutil.copytree(REPO / "config", target)
    path = target / "departments" / "okf.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    bus = {"name": "Driftsvagt ØKF", "amqp": True}
    data["departments"][0]["contacts"] = {
        "strategic": bus,
        "tactical": bus,
        "operational": bus,
        "system_owners": {},
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
    return target


def clock_rows(
    n: int, first_due: datetime, spread_s: float, seed: int, prefix: str
) -> Iterator[tuple[object, ...]]:
    """Open response clocks whose first step falls due uniformly over ``spread_s``."""
    rng = random.Random(seed)
    started = first_due - timedelta(seconds=TARGET_S * STEPS[0])
    for i in range(n):
        offset = timedelta(seconds=rng.uniform(0, spread_s))
        due = [first_due + offset + timedelta(seconds=TARGET_S * (s - STEPS[0])) for s in STEPS]
        row = {
            "ticket_id": f"{prefix}-{i}",
            "clock_key": "resolution",
            "metric": "resolution",
            "agreement_kind": "sla",
            "agreement_key": "sla:okf:opus-loen",
            "department": "okf",
            "service": "opus-loen",
            "function": "server-network",
            "priority": "P3",
            "calendar": "office",
            "target_s": TARGET_S,
            "state": "running",
            "running": True,
            "elapsed_s": 0.0,
            "fraction": 0.0,
            "started_at": started + offset,
            "stopped_at": None,
            "deadline": due[3],
            "next_due_at": due[0],
            "measured_at": started,
            "steps": STEPS,
            "tiers": TIERS,
            "step_due_at": due,
        }
        yield tuple(row[column] for column in CLOCK_COLUMNS)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def refresh_duration(port: int) -> float:
    """The engine's own reading of how long its last gauge refresh took."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        if family.name == "sla_store_refresh_duration_seconds":
            return float(family.samples[0].value)
    raise SystemExit("the engine exported no sla_store_refresh_duration_seconds")


async def load(database_url: str, clocks: int, stream: int, base: datetime) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await migrate(connection)
        for prefix, n, spread_s, seed in (("C", clocks, 3600.0, 1), ("S", stream, 60.0, 2)):
            chunk = 100_000
            for start in range(0, n, chunk):
                rows = list(
                    clock_rows(
                        min(chunk, n - start), base, spread_s, seed + start, f"{prefix}{start}"
                    )
                )
                await connection.copy_records_to_table(
                    "tickets", records=[(r[0],) for r in rows], columns=["ticket_id"]
                )
                await connection.copy_records_to_table(
                    "clocks", records=rows, columns=CLOCK_COLUMNS
                )
        await connection.execute("ANALYZE tickets; ANALYZE clocks")
    finally:
        await connection.close()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=1_000_000)
    parser.add_argument("--stream", type=int, default=3_000)
    parser.add_argument("--lead-s", type=float, default=0, help="default: time to load + 15 s")
    parser.add_argument("--window-s", type=float, default=75.0)
    parser.add_argument(
        "--gauges-refresh-s",
        type=float,
        default=Settings().gauges_refresh_s,
        help="the engine's gauge refresh (a scan of the open clocks)",
    )
    args = parser.parse_args()
    schema = f"bench_timers_{int(time.time())}"
    port = free_port()
    admin = await asyncpg.connect(DATABASE_URL)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    database_url = f"{DATABASE_URL}?search_path={schema}"
    folder = Path(tempfile.mkdtemp(prefix="sla-bench-"))
    try:
        # Load time is about 60 s per million clocks here: start the hour after it.
        lead_s = args.lead_s or 30 + args.clocks * 75e-6
        base = datetime.now(UTC) + timedelta(seconds=lead_s)
        began = time.perf_counter()
        await load(database_url, args.clocks, args.stream, base)
        print(
            f"loaded {args.clocks:,} open clocks + {args.stream:,} due within a minute "
            f"in {time.perf_counter() - began:.1f} s"
        )
        if datetime.now(UTC) > base - timedelta(seconds=5):
            raise SystemExit("loading took longer than --lead-s: give a larger one")
        env = {
            **os.environ,
            "SLA_ENGINE_AMQP_URL": AMQP_URL,
            "SLA_ENGINE_DATABASE_URL": database_url,
            "SLA_ENGINE_CONFIG_DIR": str(bench_config(folder)),
            "SLA_ENGINE_HTTP_PORT": str(port),
            "SLA_ENGINE_GAUGES_REFRESH_S": str(args.gauges_refresh_s),
        }
        log = (folder / "engine.log").open("w")
        engine = subprocess.Popen(
            [str(Path(sys.executable).with_name("sla-engine")), "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        end = base + timedelta(seconds=args.window_s)
        while datetime.now(UTC) < end + timedelta(seconds=2):
            assert engine.poll() is None, (folder / "engine.log").read_text()[-2000:]
            await asyncio.sleep(0.5)
        rss = peak_rss_mib(engine.pid)
        refresh_s = await refresh_duration(port)
        engine.send_signal(signal.SIGTERM)
        engine.wait(60)
        log.close()
        rows = await admin.fetch(
            f'SELECT extract(epoch FROM fired_at - due_at) AS late FROM "{schema}".escalation_steps'
            " WHERE due_at >= $1 AND due_at < $2",
            base,
            end,
        )
        late = [float(r["late"]) for r in rows]
        # Only first steps lie inside the window (the next is an hour later).
        expected = await admin.fetchval(
            f'SELECT count(*) FROM "{schema}".clocks WHERE step_due_at[1] >= $1'
            " AND step_due_at[1] < $2",
            base,
            end,
        )
        if not late:
            raise SystemExit("no step fired inside the window: see " + str(folder))
        print(f"steps due in the {args.window_s:.0f} s window: {expected:,}, fired: {len(late):,}")
        p50, p99 = (percentile(late, q) * 1000 for q in (0.5, 0.99))
        print(
            f"lateness (fired - due): p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
            f"max {max(late) * 1000:.0f} ms"
        )
        print(f"engine peak RSS: {rss:.0f} MiB")
        print(
            f"gauge refresh every {args.gauges_refresh_s:g} s, the last took "
            f"{refresh_s * 1000:.0f} ms"
        )
    finally:
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
