"""The outbox port in PostgreSQL: notices leased with ``FOR UPDATE SKIP LOCKED``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from engine.notify.notice import Notice
from engine.store.outbox import ClaimedNotice, Settlement
from engine.store.postgres.database import Database, borrow

CLAIM = """
UPDATE outbox SET next_attempt_at = $2, attempts = attempts + 1
WHERE notice_id IN (
    SELECT notice_id FROM outbox
    WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
RETURNING notice_id, ticket_id, channel, recipient, recipient_name, subject, body,
    payload::text AS payload, attempts
"""
# Only while the claim is still ours: had the lease run out and another sender taken
# the notice, its outcome is the one that stands.
SETTLE = (
    "UPDATE outbox SET status = $2, next_attempt_at = $3, sent_at = $4,"
    " failed_at = $5, last_error = $6"
    " WHERE notice_id = $1 AND attempts = $7 AND status = 'pending'"
)
EARLIEST_PENDING = "SELECT min(next_attempt_at) FROM outbox WHERE status = 'pending'"


class PostgresOutboxStore:
    """The outbox port on a pool (or one connection)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedNotice]:
        """Lease the ``limit`` earliest pending notices due at ``now``, in no set order."""
        async with borrow(self._database) as connection:
            rows = await connection.fetch(CLAIM, now, lease_until, limit)
        return [
            ClaimedNotice(
                notice=Notice(
                    notice_id=row["notice_id"],
                    channel=row["channel"],
                    recipient=row["recipient"],
                    recipient_name=row["recipient_name"],
                    subject=row["subject"],
                    body=row["body"],
                    payload=json.loads(row["payload"]),
                ),
                ticket_id=row["ticket_id"],
                attempts=row["attempts"],
            )
            for row in rows
        ]

    async def settle(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts ended, each only while its claim is still the latest."""
        async with borrow(self._database) as connection:
            await connection.executemany(
                SETTLE,
                [
                    (
                        o.notice_id,
                        o.status,
                        o.next_attempt_at,
                        o.sent_at,
                        o.failed_at,
                        o.last_error,
                        o.attempts,
                    )
                    for o in outcomes
                ],
            )

    async def earliest_pending(self) -> datetime | None:
        """When the earliest pending notice may be tried; None when none is pending."""
        async with borrow(self._database) as connection:
            earliest: datetime | None = await connection.fetchval(EARLIEST_PENDING)
        return earliest
