"""The connection type the store's functions accept, and how the daemon names its own."""

from __future__ import annotations

from typing import TypeAlias
from urllib.parse import parse_qs, urlsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from a pool."""


APPLICATION_NAME = "sla-engine"


def server_settings(database_url: str, role: str) -> dict[str, str]:
    """The engine's connections named in ``pg_stat_activity`` (``sla-engine`` and its
    role), so an operator tells them apart from others; a name set in the URL is kept."""
    if "application_name" in parse_qs(urlsplit(database_url).query):
        return {}
    return {"application_name": f"{APPLICATION_NAME} {role}"}
