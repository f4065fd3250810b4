"""Planner statistics of the engine's tables, kept fresh by the engine itself.

Intake looks tickets, events and clocks up a batch at a time (``ticket_id = ANY($1)``).
Without column statistics PostgreSQL takes each of the array's values to match half a
percent of the table, so a batch of a few hundred tickets looks like the whole table and
is read by a sequential scan: in the full-size backlog (a million events into empty
tables) the drain fell from about 2,000 to 1,000 events a second as the tables grew,
and one ANALYZE brought it back at once. Autovacuum's analyze prevents this where it
runs, but it can be off (it is on the CI machine) or lag behind a bulk load. So the
engine analyzes the indexed columns of each of its tables that changed by as much as
autovacuum would wait for (its defaults: 50 rows and a tenth of the table), looking
once a minute as autovacuum does (``SLA_ENGINE_ANALYZE_INTERVAL_S``): where autovacuum
keeps up, the counter it resets stays below that and this does nothing.
"""

from __future__ import annotations

import asyncpg
import structlog

from engine.metrics import TABLES_ANALYZED

log = structlog.get_logger(__name__)

# autovacuum_analyze_threshold and autovacuum_analyze_scale_factor's defaults.
MIN_CHANGED_ROWS = 50
CHANGED_SHARE = 0.1

# The engine's tables in its schema (the pool's search_path) that changed since their
# last full analyze (autovacuum's, or a person's) by enough to matter, with their rows
# changed in all and the columns their indexes are on; the counters are the cumulative
# statistics system's.
GROWN = """
SELECT s.relname, s.n_tup_ins + s.n_tup_upd + s.n_tup_del AS changed,
    greatest(s.n_live_tup, 0) AS live,
    array_agg(DISTINCT a.attname::text ORDER BY a.attname::text) AS columns
FROM pg_stat_user_tables AS s
JOIN pg_index AS i ON i.indrelid = s.relid
JOIN pg_attribute AS a ON a.attrelid = s.relid AND a.attnum = ANY(i.indkey)
WHERE s.schemaname = current_schema()
    AND s.n_mod_since_analyze > $1::bigint + $2::float8 * greatest(s.n_live_tup, 0)
GROUP BY s.relid, s.relname, s.n_tup_ins, s.n_tup_upd, s.n_tup_del, s.n_live_tup
ORDER BY s.relname
"""
# One engine analyzes at a time; another finding the lock taken leaves it to that one.
LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('sla-engine:analyze'))"


async def analyze_changed(pool: asyncpg.Pool, analyzed_at: dict[str, int]) -> list[str]:
    """ANALYZE the indexed columns of the engine's tables that changed enough; their
    names (none when another engine is analyzing now).

    Only the columns the indexes are on: they are what the look-ups filter on, and they
    are cheap to sample, where the whole of ``events`` or ``clocks`` (JSON payloads,
    arrays) cost the database enough to slow a bench-intake drain by a third when done
    every 10 seconds. An ANALYZE of some columns leaves the table's count of changes
    since its last analyze as it was (that count is autovacuum's to reset), so
    ``analyzed_at`` keeps, per table, its count of changed rows at this process's last
    analyze of it.
    """
    async with pool.acquire() as connection, connection.transaction():
        if not await connection.fetchval(LOCK):
            return []
        tables = []
        for row in await connection.fetch(GROWN, MIN_CHANGED_ROWS, CHANGED_SHARE):
            table, changed = row["relname"], row["changed"]
            last = analyzed_at.get(table, 0)
            since = changed - last if changed >= last else changed  # counters reset
            if since <= MIN_CHANGED_ROWS + CHANGED_SHARE * row["live"]:
                continue  # analyzed by this process since it changed that much
            columns = ", ".join(_identifier(column) for column in row["columns"])
            # Names read from the catalog, quoted as identifiers.
            await connection.execute(f"ANALYZE {_identifier(table)} ({columns})")
            analyzed_at[table] = changed
            tables.append(table)
    return tables


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class StatisticsKeeper:
    """``analyze_changed`` with what this process analyzed last (``refresh`` is the
    engine's periodic job)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._analyzed_at: dict[str, int] = {}  # see analyze_changed

    async def refresh(self) -> None:
        """One look; a failure is logged and the next run tries again."""
        try:
            tables = await analyze_changed(self._pool, self._analyzed_at)
        except Exception as exc:  # noqa: BLE001 - statistics only: the next run tries again
            log.warning("store.analyze_failed", error=repr(exc))
            return
        for table in tables:
            TABLES_ANALYZED.labels(table=table).inc()
        if tables:
            log.info("store.analyzed", tables=tables)
