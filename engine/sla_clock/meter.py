"""The clock core bound to one agreement configuration: what intake and simulation call."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from engine.config import AgreementConfig
from engine.events import TicketEvent
from engine.sla_clock.agreements import Agreement, CalendarBook, attach_ola, attach_sla
from engine.sla_clock.clocks import TicketClocks, reading_clocks, ticket_clocks
from engine.sla_clock.timeline import READ_ORDER, Reading
from engine.vocabulary import ProviderFunction


class ClockMeter:
    """Measures tickets' clocks under one configuration; pure, no I/O, no wall clock.

    A ticket attaches the versions of its agreements in force at its creation; with
    ``versions_at``, every ticket attaches those in force then instead (what-if: a
    draft version over a history that came before it).
    """

    def __init__(self, config: AgreementConfig, versions_at: datetime | None = None) -> None:
        self.config = config
        self.versions_at = versions_at
        self.calendars = CalendarBook(config)
        # The configuration never changes under a meter, so neither does an attached
        # agreement: attach each (department, service) or OLA once per span of time
        # between two versions' starts.
        self._slas: dict[tuple[int, str, str], Agreement] = {}
        self._olas: dict[tuple[int, ProviderFunction, str, str], Agreement | None] = {}
        # The instants versions come into force, held here: ``config.era`` reads them
        # from a pydantic private attribute (about 2 us a look-up), and every ticket's
        # first measurement asks once per agreement it attaches.
        self._version_starts = config.version_starts()
        # A ticket's attachments all ask at its creation: the last answer, kept for it.
        self._era_at: datetime | None = None
        self._era_index = 0
        # One bound method for every reading to hold, not one made at each creation: a
        # reading is kept for as long as its ticket's events are (see Recorder), and each
        # object it holds is one more for the collector to walk.
        self._priority_of = config.priority

    def _era(self, at: datetime) -> int:
        """``config.era(at)``: the span of time between two version starts ``at`` is in."""
        if at is not self._era_at:
            self._era_at, self._era_index = at, bisect_right(self._version_starts, at)
        return self._era_index

    def _attach_sla(self, department: str, service: str, created_at: datetime) -> Agreement:
        at = self.versions_at or created_at
        key = (self._era(at), department, service)
        found = self._slas.get(key)
        if found is None:
            found = self._slas[key] = attach_sla(self.config, department, service, at)
        return found

    def _attach_ola(
        self, function: ProviderFunction, department: str, service: str, created_at: datetime
    ) -> Agreement | None:
        at = self.versions_at or created_at
        key = (self._era(at), function, department, service)
        if key not in self._olas:
            self._olas[key] = attach_ola(self.config, function, department, service, at)
        return self._olas[key]

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
            priority_of=self._priority_of,
            as_of=as_of,
        )

    def measure_more(
        self,
        reading: Reading | None,
        events: Sequence[TicketEvent],
        new: Sequence[TicketEvent],
        attached: Mapping[str, Agreement],
        as_of: datetime,
        *,
        in_place: bool = False,
    ) -> TicketClocks | None:
        """``measure(events, ...)``, where ``new`` are the last of ``events`` to come and
        ``reading`` (a ``TicketClocks.reading``) what the ones before them said.

        When the new events all come after the last one read (in READ_ORDER), only they
        are read, and the cost does not grow with the ticket's history; otherwise (no
        reading, a reading of other events, a late event) every event is read again.
        ``in_place``: the caller gives ``reading`` up, and it is read on itself
        (``Reading.read_on``) rather than copied (``Reading.extended``), which leaves it
        as it was to be read on from again.
        """
        if reading is not None and reading.count + len(new) == len(events):
            ordered = sorted(new, key=READ_ORDER) if len(new) > 1 else new
            if reading.follows(ordered):
                return reading_clocks(
                    reading.read_on(ordered) if in_place else reading.extended(ordered),
                    attached=attached,
                    attach_sla=self._attach_sla,
                    attach_ola=self._attach_ola,
                    calendar_of=self.calendars.get,
                    as_of=as_of,
                )
        return self.measure(events, attached, as_of)
