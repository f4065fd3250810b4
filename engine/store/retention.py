"""Personal data of requesters, purged from closed tickets after the retention period.

The engine decides nothing from who raised a ticket or what it says: the requester's
name, e-mail and phone, the subject and the texts (the description, the comments, a
rating's comment) are kept only so that people can recognise a ticket while it is
worked on and for a while after. A set number of days after a ticket was closed they
are removed from its stored events; the events stay valid (the subject becomes
``[removed]``), so its clocks, reports, exports and simulations are unchanged.
Agents' names (``agent``, ``author``) are the provider's staff, not requesters, and stay.

A ticket is taken under its row lock and passed over while another holds it: the
recorder holds the same lock while it records, so a purge never waits on intake nor
races it. An event recorded after the purge (a late comment) marks the ticket for
purging again. Which tickets and what is blanked: ``PersonalDataStore``; when, and how
many per transaction: here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from engine.loops import Every
from engine.metrics import PERSONAL_DATA_PURGED
from engine.store.personal_data import PersonalDataStore, Purged

log = structlog.get_logger(__name__)

REMOVED = "[removed]"


async def purge_personal_data(
    store: PersonalDataStore, now: datetime, retention: timedelta, batch: int = 1000
) -> Purged:
    """Purge the tickets closed before ``now - retention``, ``batch`` tickets per
    transaction, until none is left."""
    tickets = events = 0
    while True:
        purged = await store.purge_personal_data(now - retention, batch, REMOVED, now)
        tickets += purged.tickets
        events += purged.events
        if purged.tickets < batch:
            return Purged(tickets, events)


class PersonalDataPurger:
    """Purges every ``interval_s`` (APScheduler; a slow purge is not stacked)."""

    def __init__(
        self, store: PersonalDataStore, *, retention_days: float, interval_s: float
    ) -> None:
        self._store = store
        self._retention = timedelta(days=retention_days)
        self._every = Every(self.purge, interval_s, "personal-data-purge")

    def start(self) -> None:
        self._every.start()

    def stop(self) -> None:
        self._every.stop()

    async def purge(self) -> None:
        """One purge; a failure is logged and the next run tries again."""
        try:
            purged = await purge_personal_data(self._store, datetime.now(UTC), self._retention)
        except Exception as exc:  # noqa: BLE001 - the next run tries again; nothing is lost
            log.warning("retention.purge_failed", error=repr(exc))
            return
        PERSONAL_DATA_PURGED.inc(purged.tickets)
        if purged.tickets:
            log.info(
                "retention.purged",
                tickets=purged.tickets,
                events=purged.events,
                retention_days=self._retention / timedelta(days=1),
            )
