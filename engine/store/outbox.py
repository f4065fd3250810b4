"""The port the sender delivers the outbox through: claim due notices, settle them.

A claim leases a notice (moves its next attempt ahead), so a sender that dies while
delivering gives it back when the lease runs out. A settlement stands only while the
claim is still the sender's: same attempt, still pending. Digests (the notices a budget
held, or a catch-up gathered) are claimed and settled the same way, once their window
has ended. A notice, or a digest's item, whose step was superseded before it left is
claimed marked so, and the sender settles it without sending it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

from engine.notify.budget import Window
from engine.notify.digest import Digest, DigestItem, Language
from engine.notify.notice import ChannelName, Notice

NoticeStatus = Literal["pending", "sent", "failed", "superseded"]
BudgetKey = tuple[ChannelName, str]
"""A budget by its channel and recipient."""


@dataclass(frozen=True, slots=True)
class ClaimedNotice:
    """A notice leased to this sender, and which attempt this is (from 1)."""

    notice: Notice
    ticket_id: str | None  # None: a monthly report's, of no ticket
    attempts: int
    superseded: bool = False  # its step was superseded: settle it, send nothing


@dataclass(frozen=True, slots=True)
class ClaimedDigest:
    """A digest leased to this sender: its items whose steps still stand, the attempt."""

    digest: Digest
    attempts: int
    superseded: int  # listed items left out: their steps were superseded


@dataclass(frozen=True, slots=True)
class HeldNotice:
    """A notice held for the digest of its recipient's window, as an item of it."""

    channel: ChannelName
    recipient: str
    recipient_name: str
    language: Language
    window_start: datetime
    send_at: datetime
    item: DigestItem


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


class DigestWriter(Protocol):
    """What a firing transaction does with the notices a budget holds."""

    async def budget_windows(self, keys: Sequence[BudgetKey]) -> dict[BudgetKey, Window]:
        """Lock these budgets until the transaction ends; where each stands (absent: quiet)."""
        ...

    async def hold_notices(
        self,
        held: Sequence[HeldNotice],
        windows: Mapping[BudgetKey, Window],
        now: datetime,
        max_items: int = 500,
    ) -> None:
        """Append the held notices to their digests, each listing up to ``max_items`` and
        counting the rest; save the budgets' windows."""
        ...


class OutboxStore(Protocol):
    """Where notices wait to be delivered."""

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedNotice]:
        """Lease the ``limit`` earliest pending notices due at ``now``, in no set order."""
        ...

    async def settle(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts ended, each only while its claim is still the latest."""
        ...

    async def claim_digests(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDigest]:
        """Lease the ``limit`` earliest pending digests due at ``now``, in no set order."""
        ...

    async def settle_digests(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts at digests ended (``notice_id`` is the digest's id)."""
        ...

    async def earliest_pending(self) -> datetime | None:
        """When the earliest pending notice or digest may be tried; None when none is."""
        ...
