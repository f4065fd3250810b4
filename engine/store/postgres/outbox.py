"""The outbox port in PostgreSQL: notices and digests leased with ``FOR UPDATE SKIP LOCKED``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from engine.notify.notice import Attachment, Notice
from engine.store.outbox import ClaimedDigest, ClaimedNotice, Settlement
from engine.store.postgres import digests
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
    payload::text AS payload, html, attachments::text AS attachments, attempts,
    EXISTS (
        SELECT 1 FROM escalation_steps AS s
        WHERE s.ticket_id = outbox.ticket_id AND s.clock_key = outbox.clock_key
          AND s.step = outbox.step AND s.status = 'superseded'
    ) AS superseded
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
                    html=row["html"],
                    attachments=tuple(
                        Attachment.from_json(a) for a in json.loads(row["attachments"])
                    ),
                ),
                ticket_id=row["ticket_id"],
                attempts=row["attempts"],
                superseded=row["superseded"],
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

    async def claim_digests(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDigest]:
        """Lease the ``limit`` earliest pending digests due at ``now``, in no set order."""
        async with borrow(self._database) as connection:
            return await digests.claim_digests(connection, now, lease_until, limit)

    async def settle_digests(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts at digests ended (``notice_id`` is the digest's id)."""
        async with borrow(self._database) as connection:
            await digests.settle_digests(connection, outcomes)

    async def earliest_pending(self) -> datetime | None:
        """When the earliest pending notice or digest may be tried; None when none is."""
        async with borrow(self._database) as connection:
            notice: datetime | None = await connection.fetchval(EARLIEST_PENDING)
            digest = await digests.earliest_digest(connection)
        return min((at for at in (notice, digest) if at is not None), default=None)
