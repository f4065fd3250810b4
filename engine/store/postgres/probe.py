"""The readiness probe's question to PostgreSQL: does it answer a connection of its own?"""

from __future__ import annotations

import asyncpg

PING = "SELECT 1"


async def ping(database_url: str, timeout_s: float) -> None:
    """Connect, ask the trivial question and close; raises when the database does not answer."""
    connection = await asyncpg.connect(database_url, timeout=timeout_s)
    try:
        await connection.fetchval(PING)
    finally:
        await connection.close(timeout=timeout_s)
