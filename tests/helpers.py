"""Paths and types the tests share."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from engine.config import AgreementConfig
from engine.config.notices import ChannelBudget, NoticesConfig
from engine.store.migrate import migrations

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "config"

EditYaml = Callable[[str, Callable[[Any], None]], Path]
"""Change one file of a copied configuration: ``edit("catalog.yaml", change)``."""


def every_notice_alone(data: Any) -> None:
    """In ``notices.yaml``'s data: no e-mail budget, so each notice goes out by itself
    (for tests about the notices of each step rather than about how many arrive)."""
    data["notices"]["email"].pop("max_messages", None)
    data["notices"]["strategic_breach_bypasses_budget"] = False


def unbudgeted(config: AgreementConfig) -> AgreementConfig:
    """The configuration with no budget on any channel: every notice alone."""
    return config.model_copy(update={"notices": NoticesConfig(email=ChannelBudget())})


async def migrated_up_to(db: asyncpg.Connection, count: int) -> None:
    """The schema as the first ``count`` migrations left it, recorded as applied: a
    database of an earlier release, for a test of the migrations after them."""
    async with db.transaction():
        await db.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in migrations()[:count]:
            await db.execute(migration.sql)
            await db.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )


def counting(function: Callable[..., Any], calls: list[object]) -> Callable[..., Any]:
    """``function``, appending the arguments of each call to ``calls``: a spy."""

    def counted(*args: Any) -> Any:
        calls.append(args)
        return function(*args)

    return counted
