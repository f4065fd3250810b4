"""The clock core bound to one agreement configuration: what intake and simulation call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import cache, partial

from engine.config import AgreementConfig
from engine.events import TicketEvent
from engine.sla_clock.agreements import Agreement, CalendarBook, attach_ola, attach_sla
from engine.sla_clock.clocks import TicketClocks, ticket_clocks


class ClockMeter:
    """Measures tickets' clocks under one configuration; pure, no I/O, no wall clock."""

    def __init__(self, config: AgreementConfig) -> None:
        self.config = config
        self.calendars = CalendarBook(config)
        # The configuration never changes under a meter, so neither does an attached
        # agreement: attach each (department, service) or OLA once.
        self._attach_sla = cache(partial(attach_sla, config))
        self._attach_ola = cache(partial(attach_ola, config))

    def refusal(self, event: TicketEvent) -> str | None:
        """Why an event cannot be tracked under this configuration, or None when it can.

        A known department with a catalog service it has not ordered is fine: the
        general contract covers it. A department or service nobody knows is not.
        """
        # The type string, not isinstance: this runs for every message (see timeline.py).
        if event.type == "ticket.created" or event.type == "ticket.reclassified":
            if event.department is not None and event.department not in self.config.departments:
                return f"unknown department {event.department!r}"
            if event.service is not None and event.service not in self.config.services:
                return f"unknown service {event.service!r}"
        return None

    def measure(
        self,
        events: Iterable[TicketEvent],
        attached: Mapping[str, Agreement],
        as_of: datetime,
    ) -> TicketClocks | None:
        """A ticket's clocks at ``as_of``; None until its creation is known."""
        return ticket_clocks(
            events,
            attached=attached,
            attach_sla=self._attach_sla,
            attach_ola=self._attach_ola,
            calendar_of=self.calendars.get,
            priority_of=self.config.priority,
            as_of=as_of,
        )
