"""The engine as a process: SIGTERM mid-stream, two engines on one queue, PostgreSQL restarts."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import aio_pika
import asyncpg
import pytest

from engine.intake.publish import publish_events
from tests.acceptance.conftest import start
from tests.daemons import Daemon
from tests.services import AMQP_URL, get_json, poll
from tests.streams import lines, stream

pytestmark = pytest.mark.acceptance


async def events_in(database_url: str) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        value = await connection.fetchval("SELECT count(*) FROM events")
    finally:
        await connection.close()
    assert isinstance(value, int)
    return value


async def all_recorded(database_url: str, n: int, timeout_s: float = 60) -> None:
    async def check() -> bool:
        return await events_in(database_url) == n

    await poll(check, timeout_s, what=f"{n} events in the database")


async def some_recorded(database_url: str, n: int) -> None:
    async def check() -> bool:
        return await events_in(database_url) >= n

    await poll(check, what=f"the first {n} events to be recorded")


async def test_sigterm_mid_stream_loses_nothing(
    daemons: list[Daemon],
    daemon_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    events = stream(600, seed=3)
    first = await start(daemons, daemon_env, tmp_path)
    publisher = asyncio.create_task(publish_events(lines(events), AMQP_URL))

    await some_recorded(database_url, 300)
    assert await first.terminate() == 0
    stopped = first.logged("engine.stopped")
    assert stopped is not None
    await publisher
    assert await events_in(database_url) < len(events), "the stream was over before SIGTERM"
    second = await start(daemons, daemon_env, tmp_path)
    await all_recorded(database_url, len(events))
    assert await second.terminate() == 0


async def test_two_engines_share_the_queue_without_loss_or_double(
    daemons: list[Daemon],
    daemon_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    events = stream(800, seed=4)
    engines = [await start(daemons, daemon_env, tmp_path) for _ in range(2)]
    await publish_events(lines(events), AMQP_URL)
    await all_recorded(database_url, len(events))
    for engine in engines:
        assert await engine.terminate() == 0
    stats = [engine.logged("engine.stopped") or {} for engine in engines]
    assert sum(s["recorded"] for s in stats) == len(events)
    assert all(s["recorded"] > 0 for s in stats), stats  # both took part


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql"))
    assert versions, "no local PostgreSQL cluster to stop and start"
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


async def test_postgresql_stopped_mid_stream_every_event_recorded_once(
    daemons: list[Daemon],
    daemon_env: dict[str, str],
    database_url: str,
    tmp_path: Path,
    broker: aio_pika.abc.AbstractChannel,
) -> None:
    events = stream(600, seed=5)
    engine = await start(daemons, daemon_env, tmp_path)
    half = len(events) // 2
    await publish_events(lines(events[:half]), AMQP_URL)

    await some_recorded(database_url, 200)
    subprocess.run([*_cluster(), "stop", "-m", "fast"], check=True, timeout=60)
    try:
        await publish_events(lines(events[half:]), AMQP_URL)

        async def waiting() -> bool:
            return any(e["event"] == "intake.store_unavailable" for e in engine.events())

        await poll(waiting, what="the engine to notice the database is gone")
        status, body = await get_json(f"{engine.url}/readyz")
        assert status == 503
        assert body["checks"]["database"] != "ok"
        assert (await get_json(f"{engine.url}/healthz"))[0] == 200  # alive: no restart
    finally:
        subprocess.run([*_cluster(), "start"], check=True, timeout=120)
    await all_recorded(database_url, len(events), timeout_s=120)

    async def ready() -> bool:
        return (await get_json(f"{engine.url}/readyz"))[0] == 200

    await poll(ready, what="the engine to be ready again")
    connection = await asyncpg.connect(database_url)
    try:
        distinct = await connection.fetchval("SELECT count(DISTINCT event_id) FROM events")
    finally:
        await connection.close()
    assert distinct == len(events)
    assert await engine.terminate() == 0
