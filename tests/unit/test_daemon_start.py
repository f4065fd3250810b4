"""An engine started before its broker or database waits for it instead of exiting."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from engine.config import load_config
from engine.daemon import connect_broker, serve
from engine.settings import Settings
from tests.helpers import EXAMPLE_CONFIG
from tests.services import poll


async def test_waits_for_the_broker_until_stopped() -> None:
    # Port 1 on this machine refuses at once: a broker that is not up yet.
    settings = Settings(amqp_url="amqp://guest:guest@127.0.0.1:1/", db_retry_max_s=0.2)
    stopping = asyncio.Event()
    with capture_logs() as logs:
        attempt = asyncio.create_task(connect_broker(settings, stopping))

        async def retried() -> bool:
            assert not attempt.done(), "gave up instead of waiting"
            return sum(1 for e in logs if e["event"] == "broker.unavailable") >= 3

        await poll(retried, timeout_s=20, what="three retries logged")
        stopping.set()
        assert await asyncio.wait_for(attempt, 5) is None
    assert all("guest:guest" not in str(e) for e in logs)


async def test_logs_every_url_redacted_and_takes_a_multi_host_database_url() -> None:
    # Ports 1 and 2 refuse at once: two database hosts that are not up yet.
    settings = Settings(
        amqp_url="amqp://guest@127.0.0.1:1/?password=s3cret-amqp",
        database_url="postgresql://app:s3cret-pg@127.0.0.1:1,127.0.0.1:2/sla"
        "?sslmode=disable&sslpassword=s3cret-key",
        config_dir=EXAMPLE_CONFIG,
        http_port=0,
        db_retry_max_s=0.2,
    )
    stopping = asyncio.Event()
    with capture_logs() as logs:
        serving = asyncio.create_task(serve(settings, load_config(EXAMPLE_CONFIG), stopping))

        async def waiting() -> bool:
            assert not serving.done(), "the engine stopped instead of waiting for the database"
            return any(e["event"] == "store.unavailable" for e in logs)

        await poll(waiting, timeout_s=20, what="an attempt on the database logged")
        stopping.set()
        await asyncio.wait_for(serving, 5)
    (starting,) = (e for e in logs if e["event"] == "engine.starting")
    assert starting["database_url"] == (
        "postgresql://app:***@127.0.0.1:1,127.0.0.1:2/sla?sslmode=disable&sslpassword=***"
    )
    assert starting["amqp_url"] == "amqp://guest@127.0.0.1:1/?password=***"
    assert all("s3cret" not in str(e) for e in logs)
