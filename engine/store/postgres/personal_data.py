"""The personal-data purge in PostgreSQL: one statement per batch of tickets."""

from __future__ import annotations

from datetime import datetime

from engine.store.personal_data import Purged
from engine.store.postgres.database import Database, borrow

# A ticket is taken under its row lock with SKIP LOCKED: the recorder holds the same lock
# while it records, so a purge never waits on intake nor races it.
PURGE = """
WITH due AS (
    SELECT ticket_id FROM tickets
    WHERE closed_at < $1
      AND (personal_data_purged_at IS NULL OR personal_data_purged_at < updated_at)
    ORDER BY closed_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), scrubbed AS (
    UPDATE events SET payload = CASE events.type
        WHEN 'ticket.created'
            THEN (payload - 'requester' - 'body') || jsonb_build_object('subject', $3::text)
        WHEN 'ticket.rated' THEN payload - 'comment'
        ELSE payload || jsonb_build_object('body', '')
    END
    FROM due
    WHERE events.ticket_id = due.ticket_id
      AND (events.type IN ('ticket.created', 'ticket.commented')
           OR (events.type = 'ticket.rated' AND events.payload ? 'comment'))
    RETURNING events.event_id
)
UPDATE tickets SET personal_data_purged_at = $4
FROM due WHERE tickets.ticket_id = due.ticket_id
RETURNING tickets.ticket_id, (SELECT count(*) FROM scrubbed) AS events
"""


class PostgresPersonalData:
    """The purge on a pool (a connection per batch) or on one connection of the caller's."""

    def __init__(self, source: Database, *, acquire_timeout_s: float = 10) -> None:
        self._source = source
        self._acquire_timeout_s = acquire_timeout_s

    async def purge_personal_data(
        self, closed_before: datetime, limit: int, subject: str, purged_at: datetime
    ) -> Purged:
        """Purge up to ``limit`` tickets closed before ``closed_before``, in one transaction."""
        async with (
            borrow(self._source, self._acquire_timeout_s) as connection,
            connection.transaction(),
        ):
            rows = await connection.fetch(PURGE, closed_before, limit, subject, purged_at)
        # Every row carries the count of all the batch's scrubbed events.
        return Purged(len(rows), rows[0]["events"] if rows else 0)
