"""The SLA feed's port in PostgreSQL: the ``sla_feed`` rows, and the tickets' clocks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg

from engine.store.feed import FeedClock, FeedTicket
from engine.store.postgres.database import Database, borrow

# SKIP LOCKED: two publishers claim different rows; a lapsed claim is anyone's again.
CLAIM_FEED = """
UPDATE sla_feed SET claimed_until = $1 + $3::interval
WHERE ticket_id IN (
    SELECT ticket_id FROM sla_feed
    WHERE claimed_until IS NULL OR claimed_until <= $1
    ORDER BY changed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING ticket_id, version
"""
# One statement, so one snapshot: the version and the clocks belong together.
FEED_TICKETS = """
SELECT t.ticket_id, t.feed_version, t.department, t.service, t.priority, t.status,
       t.assigned_function, c.clock_key, c.metric, c.agreement_kind, c.agreement_key,
       c.function, c.priority AS clock_priority, c.state, c.running, c.target_s,
       c.elapsed_s, c.fraction, c.started_at, c.stopped_at, c.deadline, c.measured_at,
       c.steps, c.tiers, c.step_due_at, c.next_due_at
FROM tickets AS t LEFT JOIN clocks AS c USING (ticket_id)
WHERE t.ticket_id = ANY($1::text[])
ORDER BY t.ticket_id, c.clock_key
"""
# SKIP LOCKED: a row another transaction holds is being given a newer version (a
# recording or a firing; nothing else writes a claimed row), which this settle would not
# delete anyway. Waiting for it instead deadlocked against a recording that locks the
# same rows in another order (seen with two engines): the settle was rolled back after
# the publish, so the versions went out again when their claims lapsed. Should that
# writer roll back, the row's claim lapses and it goes out again, same message_id.
SETTLE_FEED = """
DELETE FROM sla_feed WHERE ticket_id IN (
    SELECT f.ticket_id
    FROM sla_feed AS f
    JOIN unnest($1::text[], $2::bigint[]) AS p(ticket_id, version) USING (ticket_id)
    WHERE f.version <= p.version
    FOR UPDATE OF f SKIP LOCKED
)
"""


class PostgresFeedStore:
    """The feed port on a pool (the daemon) or one connection (tests)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def claim(self, now: datetime, limit: int, lease: timedelta) -> list[FeedTicket]:
        """Claim up to ``limit`` unpublished versions and read their tickets' clocks."""
        async with borrow(self._database) as connection:
            async with connection.transaction():
                claimed = await connection.fetch(CLAIM_FEED, now, limit, lease)
            if not claimed:
                return []
            versions = {row["ticket_id"]: row["version"] for row in claimed}
            rows = await connection.fetch(FEED_TICKETS, list(versions))
        heads: dict[str, asyncpg.Record] = {}
        clocks: dict[str, list[FeedClock]] = {}
        for row in rows:
            if row["feed_version"] != versions[row["ticket_id"]]:
                # Changed since the claim: the newer version's row is unclaimed again,
                # and whoever claims it publishes it; publishing it here too would
                # send that version twice.
                continue
            heads.setdefault(row["ticket_id"], row)
            found = clocks.setdefault(row["ticket_id"], [])
            if row["clock_key"] is not None:  # a ticket without clocks: none joined
                found.append(
                    FeedClock(
                        row["clock_key"],
                        row["metric"],
                        row["agreement_kind"],
                        row["agreement_key"],
                        row["function"],
                        row["clock_priority"],
                        row["state"],
                        row["running"],
                        row["target_s"],
                        row["elapsed_s"],
                        row["fraction"],
                        row["started_at"],
                        row["stopped_at"],
                        row["deadline"],
                        row["measured_at"],
                        tuple(row["steps"]),
                        tuple(row["tiers"]),
                        tuple(row["step_due_at"] or ()),
                        row["next_due_at"],
                    )
                )
        return [
            FeedTicket(
                ticket_id,
                head["feed_version"],
                head["department"],
                head["service"],
                head["priority"],
                head["status"],
                head["assigned_function"],
                tuple(clocks[ticket_id]),
            )
            for ticket_id, head in heads.items()
        ]

    async def settle(self, published: Sequence[tuple[str, int]]) -> None:
        """Remove the published versions' rows; newer ones stay."""
        if not published:
            return
        async with borrow(self._database) as connection:
            await connection.execute(
                SETTLE_FEED, [ticket for ticket, _ in published], [v for _, v in published]
            )
