"""The port the monthly follow-up claims its reports through: a month of a department, once.

A report is claimed by recording its department and month together with its notices in
the outbox, in one transaction; a claim of a month already claimed (after a restart, or
by another engine) writes nothing. The outbox sends the notices as any other, with their
stable ids: a crash between the claim and the send sends them after, same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

from engine.notify.notice import Notice


@dataclass(frozen=True, slots=True)
class MonthlyReportClaim:
    """A department's report for a month, due at the opening of the next month's first
    working day in the department's calendar."""

    department: str
    month: date  # the first day of the month reported
    due_at: datetime


class MonthlyReportStore(Protocol):
    """Which months are claimed, and the claim itself."""

    async def monthly_reports_claimed(self, month: date) -> set[str]:
        """The departments whose report for ``month`` (its first day) is claimed."""
        ...

    async def claim_monthly_report(
        self, claim: MonthlyReportClaim, notices: Sequence[Notice], now: datetime
    ) -> bool:
        """Claim the month and put its notices in the outbox, due at ``now``, as one;
        False, writing nothing, when the month was claimed already."""
        ...
