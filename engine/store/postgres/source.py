"""Where an adapter's statements run: a pool's connection per call, or the caller's own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from engine.store.connection import Connection

Source: TypeAlias = asyncpg.Pool | Connection
"""A pool to borrow from, or one connection (a CLI's, a test's) to run on."""


@asynccontextmanager
async def connected(source: Source, acquire_timeout_s: float) -> AsyncIterator[Connection]:
    """A connection of ``source``: borrowed for the block from a pool, else itself."""
    if isinstance(source, asyncpg.Pool):
        async with source.acquire(timeout=acquire_timeout_s) as connection:
            yield connection
    else:
        yield source
