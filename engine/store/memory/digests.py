"""Budgets and digests in memory, on ``Tables``: as ``postgres/digests.py`` does them."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from uuid import UUID

from engine.notify.budget import Window, digest_id
from engine.notify.digest import Digest, DigestItem
from engine.store.memory.tables import BudgetRow, DigestRow, NoticeRow, Tables
from engine.store.outbox import BudgetKey, ClaimedDigest, HeldNotice, Settlement


def budget_windows(tables: Tables, keys: Sequence[BudgetKey]) -> dict[BudgetKey, Window]:
    """Where these budgets stand (absent: quiet); the tables' lock is the row lock."""
    found: dict[BudgetKey, Window] = {}
    for key in set(keys):
        row = tables.budgets.setdefault(key, BudgetRow())
        if row.window_start is not None:
            found[key] = Window(row.window_start, row.sent, row.holding)
    return found


def hold_notices(
    tables: Tables,
    held: Sequence[HeldNotice],
    windows: Mapping[BudgetKey, Window],
    now: datetime,
    max_items: int,
) -> None:
    """Append the held notices to their digests (listing up to ``max_items`` in each);
    save the budgets' windows."""
    for key, window in windows.items():
        tables.budgets[key] = BudgetRow(window.start, window.sent, window.holding)
    groups: dict[tuple[str, str, datetime], list[HeldNotice]] = defaultdict(list)
    for notice in held:
        groups[(notice.channel, notice.recipient, notice.window_start)].append(notice)
    for group in groups.values():
        first = group[0]
        items = [n.item.as_json() for n in group]
        part = 0
        while True:
            ident = digest_id(first.channel, first.recipient, first.window_start, part)
            row = tables.digests.get(ident)
            if row is None:
                tables.digests[ident] = DigestRow(
                    digest_id=ident,
                    channel=first.channel,
                    recipient=first.recipient,
                    recipient_name=first.recipient_name,
                    language=first.language,
                    window_start=first.window_start,
                    send_at=first.send_at,
                    items=items[:max_items],
                    held=len(items),
                    created_at=now,
                    next_attempt_at=first.send_at,
                )
                break
            if row.attempts == 0 and row.status == "pending":
                row.items.extend(items[: max(0, max_items - len(row.items))])
                row.held += len(items)
                break
            part += 1  # taken by a sender already: the rest of the window goes apart


def claim_digests(
    tables: Tables, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedDigest]:
    """Lease the ``limit`` earliest pending digests due at ``now``, in no set order."""
    due = sorted(
        (d for d in tables.digests.values() if d.status == "pending" and d.next_attempt_at <= now),
        key=lambda d: d.next_attempt_at,
    )[:limit]
    claimed = []
    for row in due:
        row.next_attempt_at = lease_until
        row.attempts += 1
        items = tuple(DigestItem.from_json(copy.deepcopy(item)) for item in row.items)
        standing = tuple(item for item in items if not _superseded(tables, item))
        digest = Digest(
            digest_id=row.digest_id,
            channel=row.channel,  # type: ignore[arg-type]
            recipient=row.recipient,
            recipient_name=row.recipient_name,
            language=row.language,  # type: ignore[arg-type]
            window_start=row.window_start,
            send_at=row.send_at,
            items=standing,
            unlisted=row.held - len(items),
        )
        claimed.append(ClaimedDigest(digest, row.attempts, len(items) - len(standing)))
    return claimed


def _superseded(tables: Tables, item: DigestItem) -> bool:
    step = tables.steps.get((item.ticket_id, item.clock_key, item.step))
    return step is not None and step.status == "superseded"


def settle_digests(tables: Tables, outcomes: Sequence[Settlement]) -> None:
    """Record how attempts at digests ended, each only while its claim is the latest."""
    settle_rows(tables.digests, outcomes)


def settle_rows(rows: Mapping[UUID, NoticeRow | DigestRow], outcomes: Sequence[Settlement]) -> None:
    """Record how attempts ended (at notices or digests), each only while its claim is
    still the latest."""
    for o in outcomes:
        row = rows.get(o.notice_id)
        if row is None or row.attempts != o.attempts or row.status != "pending":
            continue
        row.status = o.status
        row.next_attempt_at = o.next_attempt_at
        row.sent_at = o.sent_at
        row.failed_at = o.failed_at
        row.last_error = o.last_error
