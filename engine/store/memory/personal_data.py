"""The personal-data purge on the in-memory tables."""

from __future__ import annotations

import json
from datetime import datetime

from engine.store.memory.tables import Tables, TicketRow
from engine.store.personal_data import Purged


class MemoryPersonalData:
    """The purge on ``Tables``, as the PostgreSQL statement does it."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    async def purge_personal_data(
        self, closed_before: datetime, limit: int, subject: str, purged_at: datetime
    ) -> Purged:
        """Purge up to ``limit`` tickets closed before ``closed_before``, in one transaction."""
        async with self._tables.transaction() as tables:
            due = sorted(
                (ticket for ticket in tables.tickets.values() if _due(ticket, closed_before)),
                key=lambda ticket: ticket.closed_at or closed_before,
            )[:limit]
            chosen = {ticket.ticket_id for ticket in due}
            events = 0
            for row in tables.events.values():
                if row.ticket_id not in chosen:
                    continue
                if row.type not in ("ticket.created", "ticket.commented", "ticket.rated"):
                    continue
                payload = json.loads(row.payload)
                if row.type == "ticket.rated":
                    if "comment" not in payload:
                        continue  # nothing of the requester's own words to remove
                    del payload["comment"]
                elif row.type == "ticket.created":
                    payload.pop("requester", None)
                    payload.pop("body", None)
                    payload["subject"] = subject
                else:
                    payload["body"] = ""
                row.payload = json.dumps(payload, ensure_ascii=False)
                events += 1
            for ticket in due:
                ticket.personal_data_purged_at = purged_at
        return Purged(len(due), events)


def _due(ticket: TicketRow, closed_before: datetime) -> bool:
    if ticket.closed_at is None or ticket.closed_at >= closed_before:
        return False
    purged = ticket.personal_data_purged_at
    # As SQL compares: a ticket never updated is not "updated since its purge".
    return purged is None or (ticket.updated_at is not None and purged < ticket.updated_at)
