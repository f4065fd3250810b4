"""Shared fixtures: a private copy of the example configuration to break in tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import pytest
import yaml

from engine.intake import topology
from tests.helpers import EXAMPLE_CONFIG, EditYaml
from tests.services import AMQP_URL, own_schema


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A copy of the example configuration in ``config/``."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLE_CONFIG, target)
    return target


@pytest.fixture
def edit_yaml(config_dir: Path) -> EditYaml:
    """Change one file of the copied configuration through its parsed data."""

    def edit(relative: str, change: Callable[[Any], None]) -> Path:
        path = config_dir / relative
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), "utf-8")
        return path

    return edit


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A database URL whose tables live in a schema of this test's own."""
    async with own_schema("t") as url:
        yield url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to this test's schema."""
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
async def broker() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel on the real broker, with the intake queues emptied for this test."""
    connection = await aio_pika.connect_robust(AMQP_URL)
    channel = await connection.channel()
    for queue in (topology.QUEUE, topology.DEAD_LETTER_QUEUE):
        await channel.queue_delete(queue)
    await topology.declare(channel)
    yield channel
    await connection.close()
