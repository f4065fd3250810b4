"""The stored events of a period's tickets as JSON Lines: the input of a what-if simulation."""

from __future__ import annotations

from contextlib import aclosing
from datetime import datetime
from typing import TextIO

from engine.reporting.window import check_window
from engine.store.reads import HistoryReads


async def export_events(history: HistoryReads, start: datetime, end: datetime, out: TextIO) -> int:
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
    # Streamed: the store reads one snapshot and hands over a few rows at a time, so the
    # export holds little however long the period.
    async with aclosing(history.events_of_period(start, end)) as payloads:
        async for payload in payloads:
            out.write(payload + "\n")
            written += 1
    return written
