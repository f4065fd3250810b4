"""The port of the personal-data purge: blank the requesters' data of closed tickets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Purged:
    """What one purge did."""

    tickets: int
    events: int


class PersonalDataStore(Protocol):
    """The tickets' stored events, with what a purge removes from them."""

    async def purge_personal_data(
        self, closed_before: datetime, limit: int, subject: str, purged_at: datetime
    ) -> Purged:
        """Purge up to ``limit`` tickets closed before ``closed_before``, in one transaction.

        A ticket is due when never purged or recorded to since its purge, and taken
        oldest closed first. Its ``ticket.created`` events lose the requester and the
        body and get ``subject``; its ``ticket.commented`` events get an empty body, and
        its ``ticket.rated`` events lose their comment (the score stays).
        A ticket another transaction holds is passed over, not waited for.
        """
        ...
