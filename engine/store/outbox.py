"""The port the sender delivers the outbox through: claim due notices, settle them.

A claim leases a notice (moves its next attempt ahead), so a sender that dies while
delivering gives it back when the lease runs out. A settlement stands only while the
claim is still the sender's: same attempt, still pending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from engine.notify.notice import Notice

NoticeStatus = Literal["pending", "sent", "failed"]


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    """A notice leased to this sender, and which attempt this is (from 1)."""

    notice: Notice
    ticket_id: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """How an attempt at a notice ended: its new status, retry time and error."""

    notice_id: UUID
    status: NoticeStatus
    next_attempt_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    last_error: str | None
    attempts: int  # the attempt settled: a later claim's attempt is not overwritten


class OutboxStore(Protocol):
    """Where notices wait to be delivered."""

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedNotice]:
        """Lease the ``limit`` earliest pending notices due at ``now``, in no set order."""
        ...

    async def settle(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts ended, each only while its claim is still the latest."""
        ...

    async def earliest_pending(self) -> datetime | None:
        """When the earliest pending notice may be tried; None when none is pending."""
        ...
