"""The real services the integration and acceptance tests use, and polling with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

import aiohttp
import asyncpg

AMQP_URL = os.environ.get("SLA_ENGINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
DATABASE_URL = os.environ.get(
    "SLA_ENGINE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/sla_engine_test"
)


async def poll(
    check: Callable[[], Awaitable[bool]], timeout_s: float = 30, what: str = "condition"
) -> None:
    """Wait until ``check`` is true, polling; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.05)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def get_json(url: str) -> tuple[int, Any]:
    """GET ``url``: its status and JSON body; None for a body that is not JSON (a
    server still starting answers in plain text) or a connection refused (status 0)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
            status = response.status
    except aiohttp.ClientConnectionError:
        return 0, None
    try:
        return status, json.loads(text)
    except ValueError:
        return status, None


async def get_text(url: str) -> str:
    """GET ``url``, which must answer 200: its body."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.text()


async def connect_when_up(database_url: str, timeout_s: float = 120) -> asyncpg.Connection:
    """A connection, tried again until the server answers (it may be restarting)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await asyncpg.connect(database_url)
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@asynccontextmanager
async def own_schema(prefix: str) -> AsyncIterator[str]:
    """A database URL whose tables live in a schema of their own, dropped afterwards."""
    schema = f"{prefix}_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(DATABASE_URL)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await admin.close()
    try:
        yield f"{DATABASE_URL}?search_path={schema}"
    finally:  # a connection of its own: a test may have cut or restarted the others
        admin = await connect_when_up(DATABASE_URL)
        try:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            await admin.close()
