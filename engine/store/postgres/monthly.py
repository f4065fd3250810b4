"""The monthly report port in PostgreSQL: a unique row per department and month."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime

from engine.notify.notice import Notice
from engine.store.monthly import MonthlyReportClaim
from engine.store.postgres.database import Database, borrow

CLAIMED = "SELECT department FROM monthly_reports WHERE month = $1"
CLAIM = """
INSERT INTO monthly_reports (department, month, due_at, claimed_at, notice_ids)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (department, month) DO NOTHING
RETURNING department
"""
# A notice id already there is kept, as a firing's are: the id is the notice.
ENQUEUE = """
INSERT INTO outbox (notice_id, channel, recipient, recipient_name, subject, body, payload,
    html, attachments, created_at, next_attempt_at)
SELECT n.*, $10, $10 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::text[], $7::jsonb[], $8::text[], $9::jsonb[]) AS n
ON CONFLICT (notice_id) DO NOTHING
"""


class PostgresMonthlyReportStore:
    """The monthly report port on a pool (or one connection)."""

    def __init__(self, database: Database) -> None:
        self._database = database

    async def monthly_reports_claimed(self, month: date) -> set[str]:
        """The departments whose report for ``month`` (its first day) is claimed."""
        async with borrow(self._database) as connection:
            rows = await connection.fetch(CLAIMED, month)
        return {row["department"] for row in rows}

    async def claim_monthly_report(
        self, claim: MonthlyReportClaim, notices: Sequence[Notice], now: datetime
    ) -> bool:
        """Claim the month and put its notices in the outbox, due at ``now``, as one;
        False, writing nothing, when the month was claimed already."""
        ids = [notice.notice_id for notice in notices]
        async with borrow(self._database) as connection, connection.transaction():
            # Two engines inserting at once: the second waits on the first's row and,
            # once it commits, inserts nothing.
            won = await connection.fetchval(
                CLAIM, claim.department, claim.month, claim.due_at, now, ids
            )
            if won is None:
                return False
            if notices:
                columns = zip(*(_row(notice) for notice in notices), strict=True)
                await connection.execute(ENQUEUE, *map(list, columns), now)
        return True


def _row(notice: Notice) -> tuple[object, ...]:
    return (
        notice.notice_id,
        notice.channel,
        notice.recipient,
        notice.recipient_name,
        notice.subject,
        notice.body,
        json.dumps(notice.payload, ensure_ascii=False),
        notice.html,
        json.dumps([a.as_json() for a in notice.attachments], ensure_ascii=False),
    )
