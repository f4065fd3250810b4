"""Budgets and digests in PostgreSQL: what a firing transaction writes of held notices.

A budget's row is locked by every firing that offers its recipient a notice, so two
engines never both spend it; a row not there yet is first inserted empty, which makes a
second engine inserting it wait for the first to commit. Held notices are appended to
one digest row per recipient, channel and window (``INSERT ... ON CONFLICT DO UPDATE``),
only while no sender has claimed it; a notice too late for that goes into the next part.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from engine.notify.budget import Window, digest_id
from engine.notify.digest import Digest, DigestItem
from engine.store.connection import Connection
from engine.store.outbox import BudgetKey, ClaimedDigest, HeldNotice, Settlement

# Sorted, so that two transactions wanting the same budgets lock them in one order.
ENSURE_BUDGETS = """
INSERT INTO notice_budgets (channel, recipient)
SELECT * FROM unnest($1::text[], $2::text[]) AS k(channel, recipient)
ORDER BY 1, 2
ON CONFLICT DO NOTHING
"""
LOCK_BUDGETS = """
SELECT channel, recipient, window_start, sent, holding FROM notice_budgets
WHERE (channel, recipient) IN (SELECT * FROM unnest($1::text[], $2::text[]))
ORDER BY channel, recipient
FOR UPDATE
"""
SAVE_BUDGETS = """
UPDATE notice_budgets SET window_start = u.window_start, sent = u.sent, holding = u.holding
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::bool[])
    AS u(channel, recipient, window_start, sent, holding)
WHERE notice_budgets.channel = u.channel AND notice_budgets.recipient = u.recipient
"""
# A digest lists its first $10 items and counts every one in held. Each batch brings at
# most $10 items of a digest (and its count), of which the room left is appended.
APPEND_ITEMS = """
INSERT INTO digests AS t (digest_id, channel, recipient, recipient_name, language,
    window_start, send_at, items, held, created_at, next_attempt_at)
SELECT d.digest_id, d.channel, d.recipient, d.recipient_name, d.language, d.window_start,
    d.send_at, d.items, d.held, $9, d.send_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::timestamptz[], $7::timestamptz[], $8::jsonb[], $11::int[])
    AS d(digest_id, channel, recipient, recipient_name, language, window_start, send_at,
         items, held)
ON CONFLICT (digest_id) DO UPDATE SET
    -- A full list is kept as it is, so its stored (TOASTed) value is not written again.
    items = CASE WHEN jsonb_array_length(t.items) >= $10 THEN t.items ELSE t.items || (
        SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb)
        FROM jsonb_array_elements(EXCLUDED.items) WITH ORDINALITY AS x(e, n)
        WHERE n <= $10 - jsonb_array_length(t.items)
    ) END,
    held = t.held + EXCLUDED.held
WHERE t.attempts = 0 AND t.status = 'pending'
RETURNING digest_id
"""
# The items whose steps still stand; the superseded ones are only counted.
CLAIM_DIGESTS = """
WITH claimed AS (
    UPDATE digests SET next_attempt_at = $2, attempts = attempts + 1
    WHERE digest_id IN (
        SELECT digest_id FROM digests
        WHERE status = 'pending' AND next_attempt_at <= $1
        ORDER BY next_attempt_at
        LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    RETURNING digest_id, channel, recipient, recipient_name, language, window_start,
        send_at, items, held, attempts
)
SELECT c.digest_id, c.channel, c.recipient, c.recipient_name, c.language, c.window_start,
    c.send_at, c.attempts, c.held, jsonb_array_length(c.items) AS listed,
    (SELECT coalesce(jsonb_agg(i.item ORDER BY i.n), '[]'::jsonb)
     FROM jsonb_array_elements(c.items) WITH ORDINALITY AS i(item, n)
     WHERE NOT EXISTS (
         SELECT 1 FROM escalation_steps AS s
         WHERE s.ticket_id = i.item->>'ticket_id' AND s.clock_key = i.item->>'clock_key'
           AND s.step = (i.item->>'step')::float8 AND s.status = 'superseded'
     ))::text AS items
FROM claimed AS c
"""
SETTLE_DIGESTS = (
    "UPDATE digests SET status = $2, next_attempt_at = $3, sent_at = $4,"
    " failed_at = $5, last_error = $6"
    " WHERE digest_id = $1 AND attempts = $7 AND status = 'pending'"
)
EARLIEST_DIGEST = "SELECT min(next_attempt_at) FROM digests WHERE status = 'pending'"


async def budget_windows(
    connection: Connection, keys: Sequence[BudgetKey]
) -> dict[BudgetKey, Window]:
    """Lock these budgets until the transaction ends; where each stands (absent: quiet)."""
    if not keys:
        return {}
    channels, recipients = (list(column) for column in zip(*sorted(set(keys)), strict=True))
    await connection.execute(ENSURE_BUDGETS, channels, recipients)
    rows = await connection.fetch(LOCK_BUDGETS, channels, recipients)
    return {
        (row["channel"], row["recipient"]): Window(row["window_start"], row["sent"], row["holding"])
        for row in rows
        if row["window_start"] is not None
    }


async def hold_notices(
    connection: Connection,
    held: Sequence[HeldNotice],
    windows: Mapping[BudgetKey, Window],
    now: datetime,
    max_items: int,
) -> None:
    """Append the held notices to their digests (listing up to ``max_items`` in each);
    save the budgets' windows."""
    if windows:
        rows = [(k[0], k[1], w.start, w.sent, w.holding) for k, w in sorted(windows.items())]
        await connection.execute(SAVE_BUDGETS, *map(list, zip(*rows, strict=True)))
    groups: dict[tuple[str, str, datetime], list[HeldNotice]] = defaultdict(list)
    for notice in held:
        groups[(notice.channel, notice.recipient, notice.window_start)].append(notice)
    part = 0
    waiting = list(groups.values())
    while waiting:
        rows_: list[tuple[Any, ...]] = []
        for group in waiting:
            first = group[0]
            rows_.append(
                (
                    digest_id(first.channel, first.recipient, first.window_start, part),
                    first.channel,
                    first.recipient,
                    first.recipient_name,
                    first.language,
                    first.window_start,
                    first.send_at,
                    json.dumps([n.item.as_json() for n in group[:max_items]], ensure_ascii=False),
                    len(group),
                )
            )
        columns = list(map(list, zip(*rows_, strict=True)))
        placed = await connection.fetch(APPEND_ITEMS, *columns[:8], now, max_items, columns[8])
        done = {row["digest_id"] for row in placed}
        # A digest a sender has taken already: the rest of its window goes into the next part.
        waiting = [g for g, row in zip(waiting, rows_, strict=True) if row[0] not in done]
        part += 1


async def claim_digests(
    connection: Connection, now: datetime, lease_until: datetime, limit: int
) -> list[ClaimedDigest]:
    """Lease the ``limit`` earliest pending digests due at ``now``, in no set order."""
    rows = await connection.fetch(CLAIM_DIGESTS, now, lease_until, limit)
    claimed = []
    for row in rows:
        items = tuple(DigestItem.from_json(item) for item in json.loads(row["items"]))
        digest = Digest(
            digest_id=row["digest_id"],
            channel=row["channel"],
            recipient=row["recipient"],
            recipient_name=row["recipient_name"],
            language=row["language"],
            window_start=row["window_start"],
            send_at=row["send_at"],
            items=items,
            unlisted=row["held"] - row["listed"],
        )
        claimed.append(ClaimedDigest(digest, row["attempts"], row["listed"] - len(items)))
    return claimed


async def settle_digests(connection: Connection, outcomes: Sequence[Settlement]) -> None:
    """Record how attempts at digests ended, each only while its claim is the latest."""
    await connection.executemany(
        SETTLE_DIGESTS,
        [
            (o.notice_id, o.status, o.next_attempt_at, o.sent_at, o.failed_at, o.last_error,
             o.attempts)
            for o in outcomes
        ],
    )  # fmt: skip


async def earliest_digest(connection: Connection) -> datetime | None:
    """When the earliest pending digest may be tried."""
    earliest: datetime | None = await connection.fetchval(EARLIEST_DIGEST)
    return earliest
