"""The HTTP port against the real PostgreSQL: readiness probes, ticket ids, a loop kept free."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from engine.config import load_config
from engine.events import parse_event
from engine.intake.recorder import Recorder
from engine.ops import http_port
from engine.ops.http_port import HttpPort, Parts
from engine.sla_clock.meter import ClockMeter
from engine.store.migrate import migrate
from engine.store.postgres.reads import PostgresReads
from engine.store.postgres.recording import PostgresRecordingStore
from tests.helpers import EXAMPLE_CONFIG
from tests.services import get_json, poll
from tests.streams import CPH, event

pytestmark = pytest.mark.integration
METER = ClockMeter(load_config(EXAMPLE_CONFIG))
MONDAY = datetime(2026, 11, 23, 9, tzinfo=CPH)


@pytest.fixture
async def port(database_url: str) -> AsyncIterator[HttpPort]:
    """The HTTP port on a free port, connected to a migrated pool, intake not consuming."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    async with pool.acquire() as connection:
        await migrate(connection)
    serving = HttpPort(Parts(METER, database_url, tickets=PostgresReads(pool)), "127.0.0.1", 0)
    await serving.start()
    yield serving
    await serving.stop()
    await pool.close()


def url(port: HttpPort, path: str) -> str:
    return f"http://127.0.0.1:{port.port}{path}"


def count_connects(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the readiness probe's own connections; the pool opened its own before."""
    opened = [0]
    real = asyncpg.connect

    async def counted(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        opened[0] += 1
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncpg, "connect", counted)
    return opened


async def test_concurrent_readiness_probes_share_one_database_check(
    port: HttpPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_port, "READY_CACHE_S", 60.0)  # no expiry during the test
    opened = count_connects(monkeypatch)
    async with aiohttp.ClientSession() as session:

        async def probe() -> tuple[int, Any]:
            async with session.get(url(port, "/readyz")) as response:
                return response.status, await response.json()

        answers = await asyncio.gather(*(probe() for _ in range(50)))
        answers += [await probe() for _ in range(10)]  # later ones: from the cache
    assert opened[0] == 1
    # Not ready (intake does not consume here), with the database found answering.
    assert {status for status, _ in answers} == {503}
    assert all(body["checks"]["database"] == "ok" for _, body in answers)


async def test_readiness_checks_the_database_again_after_a_second(
    port: HttpPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert http_port.READY_CACHE_S == 1.0
    monkeypatch.setattr(http_port, "READY_CACHE_S", 0.2)
    opened = count_connects(monkeypatch)
    await get_json(url(port, "/readyz"))
    assert opened[0] == 1

    async def checked_again() -> bool:
        await get_json(url(port, "/readyz"))
        return opened[0] == 2

    await poll(checked_again, timeout_s=10, what="a second database check")


async def test_readiness_reports_a_failed_check_and_probes_again_later(
    port: HttpPort, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_port, "READY_CACHE_S", 0.2)
    real = asyncpg.connect

    async def refused(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        raise ConnectionRefusedError("no database here")

    monkeypatch.setattr(asyncpg, "connect", refused)
    status, body = await get_json(url(port, "/readyz"))
    assert (status, body["checks"]["database"]) == (503, "unreachable: ConnectionRefusedError")
    monkeypatch.setattr(asyncpg, "connect", real)

    async def recovered() -> bool:
        _, body = await get_json(url(port, "/readyz"))
        return bool(body["checks"]["database"] == "ok")

    await poll(recovered, timeout_s=10, what="the database found answering again")


@pytest.mark.parametrize(
    "ticket_id", ["%00", "T-1%00", "T%0A1", "-T-1", "T%201", "%C3%A6", "T" * 65, "T%2F1"]
)
async def test_ids_the_event_contract_refuses_answer_400(port: HttpPort, ticket_id: str) -> None:
    status, problem = await get_json(url(port, f"/tickets/{ticket_id}"))
    assert status == 400
    assert problem["status"] == 400
    assert problem["detail"].startswith("not a ticket id of the event contract: ")


async def test_a_valid_unknown_id_is_still_404(port: HttpPort) -> None:
    status, problem = await get_json(url(port, "/tickets/T-2026.1:x_" + "9" * 50))
    assert (status, problem["status"]) == (404, 404)


async def test_a_ticket_is_measured_off_the_event_loop(
    port: HttpPort, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many events, as a long-lived ticket has: created, then public comments.
    created = event("ticket.created", "BIG-1", 0, MONDAY, department="okf",
                    service="opus-loen", priority="P3", subject="Løn",
                    requester={"name": "B"})  # fmt: skip
    comments = [
        event(
            "ticket.commented",
            "BIG-1",
            seq,
            MONDAY + timedelta(seconds=seq),
            visibility="public",
            body=f"kommentar {seq}",
        )
        for seq in range(1, 1500)
    ]
    connection = await asyncpg.connect(database_url)
    try:
        events = [parse_event(json.dumps(e)) for e in [created, *comments]]
        await Recorder(METER, PostgresRecordingStore(connection)).record(events, datetime.now(UTC))
    finally:
        await connection.close()

    # The measurement waits for the test's /healthz answer: on the loop it could not get
    # one, and would go on after the wait, unreleased.
    measuring, release = threading.Event(), threading.Event()
    released: list[bool] = []
    measure = ClockMeter.measure

    def held(self: ClockMeter, *args: Any, **kwargs: Any) -> Any:
        measuring.set()
        released.append(release.wait(timeout=5))
        return measure(self, *args, **kwargs)

    monkeypatch.setattr(ClockMeter, "measure", held)
    ticket = asyncio.create_task(get_json(url(port, "/tickets/BIG-1")))

    async def started() -> bool:
        return measuring.is_set()

    await poll(started, timeout_s=10, what="the ticket's measurement to start")
    assert await get_json(url(port, "/healthz")) == (200, {"status": "ok"})
    release.set()
    status, state = await asyncio.wait_for(ticket, 10)
    assert released == [True], "the measurement held the event loop"
    assert status == 200
    assert state["events"] == 1500
    assert {clock["metric"] for clock in state["clocks"]} >= {"response", "resolution"}
