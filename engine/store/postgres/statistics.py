"""Planner statistics of the engine's tables, kept fresh by the engine itself.

Intake looks tickets, events and clocks up a batch at a time (``ticket_id = ANY($1)``).
Without column statistics PostgreSQL takes each of the array's values to match half a
percent of the table, so a batch of a few hundred tickets looks like the whole table and
is read by a sequential scan: in the full-size backlog (a million events into empty
tables) the drain fell from about 2,000 to 1,000 events a second as the tables grew,
and one ANALYZE brought it back at once. Autovacuum's analyze prevents this where it
runs, but it can be off (it is on the CI machine) or lag behind a bulk load. So the
engine analyzes each of its tables that changed by as much as autovacuum would wait for
(its defaults: 50 rows and a tenth of the table): where autovacuum keeps up, the counter
it resets stays below that and this does nothing.
"""

from __future__ import annotations

import asyncpg
import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from engine.loops import run_every
from engine.metrics import TABLES_ANALYZED

log = structlog.get_logger(__name__)

# autovacuum_analyze_threshold and autovacuum_analyze_scale_factor's defaults.
MIN_CHANGED_ROWS = 50
CHANGED_SHARE = 0.1

# The engine's tables in its schema (the pool's search_path) changed since their last
# analyze by enough to matter; the counters are the cumulative statistics system's.
GROWN = """
SELECT relname FROM pg_stat_user_tables
WHERE schemaname = current_schema()
    AND n_mod_since_analyze > $1::bigint + $2::float8 * greatest(n_live_tup, 0)
ORDER BY relname
"""
# One engine analyzes at a time; another finding the lock taken leaves it to that one.
LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('sla-engine:analyze'))"


async def analyze_changed(pool: asyncpg.Pool) -> list[str]:
    """ANALYZE the engine's tables that changed enough since their last analyze; their
    names (none when another engine is analyzing now)."""
    async with pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval(LOCK):
            return []
        tables = [
            row["relname"] for row in await connection.fetch(GROWN, MIN_CHANGED_ROWS, CHANGED_SHARE)
        ]
        for table in tables:
            # A name read from the catalog, quoted as an identifier.
            await connection.execute(f"ANALYZE {_identifier(table)}")
    return tables


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class StatisticsKeeper:
    """Runs ``analyze_changed`` every ``interval_s`` (APScheduler; a slow run is not
    stacked)."""

    def __init__(self, pool: asyncpg.Pool, *, interval_s: float) -> None:
        self._pool = pool
        self._interval_s = interval_s
        self._periodic: AsyncIOScheduler | None = None

    def start(self) -> None:
        self._periodic = run_every(self.refresh, self._interval_s, "planner-statistics")

    def stop(self) -> None:
        if self._periodic is not None:
            self._periodic.shutdown(wait=False)
            self._periodic = None

    async def refresh(self) -> None:
        """One look; a failure is logged and the next run tries again."""
        try:
            tables = await analyze_changed(self._pool)
        except Exception as exc:  # noqa: BLE001 - statistics only: the next run tries again
            log.warning("store.analyze_failed", error=repr(exc))
            return
        for table in tables:
            TABLES_ANALYZED.labels(table=table).inc()
        if tables:
            log.info("store.analyzed", tables=tables)
