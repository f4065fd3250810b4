"""The stored events of a period's tickets as JSON Lines: the input of a what-if simulation."""

from __future__ import annotations

from datetime import datetime
from typing import TextIO

from engine.reporting.window import check_window
from engine.store.connection import Connection

# Ordered as the clocks read a ticket's events (engine.sla_clock.timeline.order). The
# join goes through events_by_ticket; the sort of a year's events spills to disk on the
# server, which is where it belongs rather than in this process.
_EVENTS = """
SELECT e.payload::text AS payload
FROM tickets AS t JOIN events AS e USING (ticket_id)
WHERE t.created_at >= $1 AND t.created_at < $2
ORDER BY e.occurred_at, e.event_id
"""
# Rows per round trip of the cursor: few enough to keep memory flat, enough that the
# round trips do not dominate an export of millions of events.
_PREFETCH_ROWS = 5_000


async def export_events(connection: Connection, start: datetime, end: datetime, out: TextIO) -> int:
    """Write every event of the tickets created in ``[start, end)`` to ``out``, one a line.

    Tickets, not events, are chosen by the window: a simulation measures whole tickets,
    and a ticket cut at the window's edge would show clocks that never started or never
    stopped. So a ticket created in the window comes with all its events, those after
    ``end`` and those that occurred before its creation included, and a ticket created
    before ``start`` with none, not even its events inside the window. Tickets whose
    ``ticket.created`` never arrived (``created_at`` is null) are left out: they have no
    clocks to simulate. Each line is the stored payload, a v1 event as ``parse_event``
    reads it (stored as jsonb: the same fields and values, not the sender's bytes), in
    ``occurred_at`` then ``event_id`` order. Returns the number of events written.
    """
    check_window(start, end)
    written = 0
    # A server-side cursor lives in a transaction; the export reads one snapshot and
    # holds only a prefetch of rows at a time, however long the period.
    async with connection.transaction(isolation="repeatable_read", readonly=True):
        async for row in connection.cursor(_EVENTS, start, end, prefetch=_PREFETCH_ROWS):
            out.write(row["payload"] + "\n")
            written += 1
    return written
