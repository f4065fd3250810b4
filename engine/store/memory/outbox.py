"""The outbox port in memory, on ``Tables``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import datetime

from engine.notify.notice import Attachment, Notice
from engine.store.memory import digests
from engine.store.memory.tables import Tables
from engine.store.outbox import ClaimedDigest, ClaimedNotice, Settlement


class MemoryOutboxStore:
    """The outbox port on in-memory tables."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def claim(self, now: datetime, lease_until: datetime, limit: int) -> list[ClaimedNotice]:
        """Lease the ``limit`` earliest pending notices due at ``now``, in no set order."""
        async with self._tables.transaction() as tables:
            due = sorted(
                (
                    n
                    for n in tables.outbox.values()
                    if n.status == "pending" and n.next_attempt_at <= now
                ),
                key=lambda n: n.next_attempt_at,
            )[:limit]
            claimed: list[ClaimedNotice] = []
            for row in due:
                row.next_attempt_at = lease_until
                row.attempts += 1
                notice = Notice(
                    notice_id=row.notice_id,
                    channel=row.channel,  # type: ignore[arg-type]
                    recipient=row.recipient,
                    recipient_name=row.recipient_name,
                    subject=row.subject,
                    body=row.body,
                    payload=copy.deepcopy(row.payload),
                    html=row.html,
                    attachments=tuple(Attachment.from_json(a) for a in row.attachments),
                )
                superseded = False
                if row.ticket_id is not None and row.clock_key is not None and row.step is not None:
                    step = tables.steps.get((row.ticket_id, row.clock_key, row.step))
                    superseded = step is not None and step.status == "superseded"
                claimed.append(ClaimedNotice(notice, row.ticket_id, row.attempts, superseded))
        return claimed

    async def settle(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts ended, each only while its claim is still the latest."""
        async with self._tables.transaction() as tables:
            digests.settle_rows(tables.outbox, outcomes)

    async def claim_digests(
        self, now: datetime, lease_until: datetime, limit: int
    ) -> list[ClaimedDigest]:
        """Lease the ``limit`` earliest pending digests due at ``now``, in no set order."""
        async with self._tables.transaction() as tables:
            return digests.claim_digests(tables, now, lease_until, limit)

    async def settle_digests(self, outcomes: Sequence[Settlement]) -> None:
        """Record how attempts at digests ended (``notice_id`` is the digest's id)."""
        async with self._tables.transaction() as tables:
            digests.settle_digests(tables, outcomes)

    async def earliest_pending(self) -> datetime | None:
        """When the earliest pending notice or digest may be tried; None when none is."""
        tables = self._tables
        pending = [n.next_attempt_at for n in tables.outbox.values() if n.status == "pending"]
        pending += [d.next_attempt_at for d in tables.digests.values() if d.status == "pending"]
        return min(pending, default=None)
