"""Real PostgreSQL and RabbitMQ, as `make test` ensures they run; an engine in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import aio_pika
import pytest
from structlog.testing import capture_logs

from engine.config import load_config
from engine.daemon import serve
from engine.intake.consumer import IntakeConsumer
from engine.settings import Settings
from tests.helpers import EXAMPLE_CONFIG
from tests.services import AMQP_URL, free_port
from tests.streams import AHEAD_S


@pytest.fixture
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """The log events of the test, the in-process engine's included."""
    with capture_logs() as captured:
        yield captured


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        amqp_url=AMQP_URL,
        database_url=database_url,
        config_dir=EXAMPLE_CONFIG,
        batch_size=50,
        prefetch=200,
        db_retry_max_s=0.5,
        shutdown_grace_s=10,
        http_port=free_port(),
        max_ahead_s=AHEAD_S,
        monthly_reports=False,  # a test that wants them sets it (see test_monthly_daemon.py)
    )


@dataclass
class RunningEngine:
    consumer: IntakeConsumer
    stopping: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def engine(
    settings: Settings, broker: aio_pika.abc.AbstractChannel
) -> AsyncIterator[RunningEngine]:
    """The engine, running in this event loop against the real broker and database."""
    stopping = asyncio.Event()
    started: asyncio.Future[IntakeConsumer] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        serve(settings, load_config(EXAMPLE_CONFIG), stopping, on_started=started.set_result)
    )
    waiting: set[asyncio.Future[object]] = {task, started}  # type: ignore[arg-type]
    done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert started in done, "the engine did not start"
    running = RunningEngine(started.result(), stopping, task)
    yield running
    stopping.set()
    await asyncio.wait_for(task, 30)
