"""An engine started before its broker waits for it instead of exiting."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from engine.daemon import connect_broker
from engine.settings import Settings


async def test_waits_for_the_broker_until_stopped() -> None:
    # Port 1 on this machine refuses at once: a broker that is not up yet.
    settings = Settings(amqp_url="amqp://guest:guest@127.0.0.1:1/", db_retry_max_s=0.2)
    stopping = asyncio.Event()
    with capture_logs() as logs:
        attempt = asyncio.create_task(connect_broker(settings, stopping))
        deadline = asyncio.get_running_loop().time() + 20
        while sum(e["event"] == "broker.unavailable" for e in logs) < 3:
            assert not attempt.done(), "gave up instead of waiting"
            assert asyncio.get_running_loop().time() < deadline, "no retries logged"
            await asyncio.sleep(0.05)
        stopping.set()
        assert await asyncio.wait_for(attempt, 5) is None
    assert all("guest:guest" not in str(e) for e in logs)
