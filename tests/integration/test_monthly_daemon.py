"""The monthly job in the running engine: started with it, it catches up on the month
whose first working day has begun, claims each department once, and says so in the log."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from engine.business_time.calendar import BusinessCalendar
from engine.monthly.period import month_due
from engine.settings import Settings
from tests.integration.conftest import RunningEngine
from tests.monthly_history import CONFIG
from tests.services import poll

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"monthly_reports": True})


def due_now() -> dict[str, str]:
    """The departments whose report is due at this instant, and for which month."""
    now = datetime.now(UTC)
    due = {}
    for department in CONFIG.departments.values():
        found = month_due(BusinessCalendar(CONFIG.calendar_for(department.id)), now)
        if found is not None:
            due[department.id] = str(found[0])
    return due


async def test_the_engine_catches_up_on_this_months_reports_at_start(
    engine: RunningEngine, db: asyncpg.Connection, logs: list[MutableMapping[str, Any]]
) -> None:
    expected = due_now()  # every department, but in the hours before its month's opening

    def caught_up() -> set[str]:
        return {e["department"] for e in logs if e["event"] == "monthly.catch_up"}

    async def claimed() -> bool:
        rows = await db.fetch("SELECT department, month FROM monthly_reports")
        # The job logs a claim after its commit: the last row may be in before its line.
        claims = {r["department"]: r["month"].strftime("%Y-%m") for r in rows}
        return claims == expected and caught_up() >= set(expected)

    await poll(claimed, timeout_s=30, what="the reports due claimed and logged")
    assert caught_up() == set(expected)
    notices = await db.fetchval("SELECT count(*) FROM outbox WHERE ticket_id IS NULL")
    assert (notices > 0) == bool(expected)
