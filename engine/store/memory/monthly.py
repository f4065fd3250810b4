"""The monthly report port in memory, on ``Tables``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import date, datetime

from engine.notify.notice import Notice
from engine.store.memory.tables import MonthlyReportRow, NoticeRow, Tables
from engine.store.monthly import MonthlyReportClaim


class MemoryMonthlyReportStore:
    """The monthly report port on in-memory tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def monthly_reports_claimed(self, month: date) -> set[str]:
        """The departments whose report for ``month`` (its first day) is claimed."""
        async with self._tables.snapshot() as tables:
            return {department for department, at in tables.monthly_reports if at == month}

    async def claim_monthly_report(
        self, claim: MonthlyReportClaim, notices: Sequence[Notice], now: datetime
    ) -> bool:
        """Claim the month and put its notices in the outbox, due at ``now``, as one;
        False, writing nothing, when the month was claimed already."""
        async with self._tables.transaction() as tables:
            key = (claim.department, claim.month)
            if key in tables.monthly_reports:
                return False
            tables.monthly_reports[key] = MonthlyReportRow(
                claim.department, claim.month, claim.due_at, now, [n.notice_id for n in notices]
            )
            for notice in notices:
                tables.outbox.setdefault(notice.notice_id, _row(notice, now))
        return True


def _row(notice: Notice, now: datetime) -> NoticeRow:
    return NoticeRow(
        notice_id=notice.notice_id,
        ticket_id=None,
        clock_key=None,
        step=None,
        channel=notice.channel,
        recipient=notice.recipient,
        recipient_name=notice.recipient_name,
        subject=notice.subject,
        body=notice.body,
        payload=copy.deepcopy(notice.payload),
        created_at=now,
        next_attempt_at=now,
        html=notice.html,
        attachments=[a.as_json() for a in notice.attachments],
    )
