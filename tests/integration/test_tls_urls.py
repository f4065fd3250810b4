"""TLS options in the URLs reach the drivers as they are written.

The local servers speak plain TCP, so a URL that asks for TLS must fail the handshake:
that it does, and says so in the engine's log, shows that asyncpg and aio-pika were
handed the options. (Against servers with TLS, the same URLs connect.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from structlog.testing import capture_logs

from engine.daemon import connect_broker, connect_database
from engine.settings import Settings
from tests.services import DATABASE_URL, poll

pytestmark = pytest.mark.integration


async def first_failure(
    connect: Callable[[Settings, asyncio.Event], Coroutine[Any, Any, Any]],
    settings: Settings,
    event: str,
) -> str:
    """The error of the first failed attempt, as logged; then stop retrying."""
    stopping = asyncio.Event()
    with capture_logs() as logs:
        attempt: asyncio.Task[Any] = asyncio.create_task(connect(settings, stopping))

        async def logged() -> bool:
            assert not attempt.done(), "connected without TLS, or gave up"
            return any(e["event"] == event for e in logs)

        await poll(logged, timeout_s=20, what=f"a logged {event}")
        stopping.set()
        assert await asyncio.wait_for(attempt, 10) is None
    return str(next(e for e in logs if e["event"] == event)["error"])


async def test_sslmode_in_the_database_url_reaches_asyncpg() -> None:
    settings = Settings(database_url=f"{DATABASE_URL}?sslmode=require", db_retry_max_s=0.2)
    error = await first_failure(connect_database, settings, "store.unavailable")
    assert "SSL" in error  # the server without TLS refused the upgrade asyncpg asked for


async def test_amqps_in_the_broker_url_reaches_aio_pika() -> None:
    # amqps on the plain AMQP port: the TLS handshake meets a server that speaks AMQP.
    settings = Settings(amqp_url="amqps://guest:guest@127.0.0.1:5672/?no_verify_ssl=1",
                        db_retry_max_s=0.2)  # fmt: skip
    error = await first_failure(connect_broker, settings, "broker.unavailable")
    assert "SSL" in error or "ssl" in error, error
