"""Periodic jobs of the daemon (gauge refresh, personal-data purge) on APScheduler.

Only for work that repeats; no deadline is ever kept here (the scheduler of steps reads
its instants from PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler


def run_every(
    job: Callable[[], Awaitable[None]], interval_s: float, name: str
) -> AsyncIOScheduler:
    """Run ``job`` now and then every ``interval_s``; shut the scheduler down to stop.

    A run that is still going when the next is due is not stacked (one instance), and
    runs missed meanwhile are made up by one (coalesced).
    """
    periodic = AsyncIOScheduler(timezone=UTC)
    periodic.add_job(
        job,
        "interval",
        seconds=interval_s,
        id=name,
        next_run_time=datetime.now(UTC),
        coalesce=True,
        max_instances=1,
    )
    periodic.start()
    return periodic
