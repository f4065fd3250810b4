"""What a PostgreSQL adapter runs its statements on: a pool, or one connection of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg

from engine.store.connection import Connection

Database: TypeAlias = asyncpg.Pool | Connection
"""A pool (the daemon) or a single connection (tests, tools that hold one)."""


@asynccontextmanager
async def borrow(
    database: Database, acquire_timeout_s: float | None = None
) -> AsyncIterator[Connection]:
    """A connection of the pool for the block, or the one connection itself."""
    if isinstance(database, asyncpg.Pool):
        async with database.acquire(timeout=acquire_timeout_s) as connection:
            yield connection
    else:
        yield database
