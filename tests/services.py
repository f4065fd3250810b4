"""The real services the integration and acceptance tests use, and polling with a deadline."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

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
