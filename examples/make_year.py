"""Generate a realistic synthetic year of ticket events for the example configuration.

Deterministic: the same year, ticket count, seed and configuration give the same events,
byte for byte. Not kept in the repository (a year is about 2 million events, 500 MB);
write one with (``--tickets 2000`` for a small one)::

    .venv/bin/python -m examples.make_year --year 2026 --out year.jsonl

Arrivals follow office life in Copenhagen: most tickets on weekdays between 8 and 16,
Monday mornings busiest, few evenings, weekends and public holidays, a quiet July and
Christmas week, busy Januaries and school start in August; the care department, on the
24/7 calendar, raises more of its tickets out of hours. Agents work on the department's
calendar (batch windows too for batch services; P1 round the clock), requesters on
theirs. Stories are make_day's, stretched over days: first-line triage and hand-over to
the function owning the service, pauses, priority changes, rare reclassifications,
updates, reopens and closes, and now and then the requester's rating after resolution.
Events past the year's end are left out, so tickets raised
in the last days are still open.

Lines are in arrival order: about one event in a hundred arrives late (a phone note typed
up afterwards, a mobile that was offline), after events that occurred later, and one in
a thousand is sent twice (a frontend resending after a lost confirm, same ``event_id``).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import itertools
import json
import random
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from engine.business_time import BusinessCalendar
from engine.config import AgreementConfig, load_config
from engine.events import SCHEMA_VERSION
from engine.sla_clock.agreements import CalendarBook
from examples.make_day import (
    AGENTS,
    CHANNEL_WEIGHTS,
    DEPARTMENT_WEIGHTS,
    INTERNAL_NOTES,
    MONITORING_SUBJECTS,
    NAMESPACE,
    PENDING_QUESTIONS,
    PRIORITY_WEIGHTS,
    RATED_SHARE,
    RATING_COMMENTS,
    REQUESTER_REPLIES,
    SCORE_WEIGHTS,
    SERVICE_WEIGHTS,
    SUBJECTS,
    TZ,
    _matrix_cells,
    _requester,
    _unordered_service,
)
from examples.year_arrivals import Arrivals

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config"
YEAR = 2026
TICKETS = 250_000  # a municipality of this size (DESIGN.md: a few hundred thousand a year)
SEED = 20260101

UNORDERED_SHARE = 0.02  # a catalog service the department has not ordered: default targets
LATE_SHARE = 0.01
RESEND_SHARE = 0.001
# Outside desk hours the phones are mostly unanswered and monitoring raises more.
OFF_HOURS_CHANNEL_WEIGHTS = {"email": 38, "phone": 8, "web": 40, "api": 14}
# School start: new pupils' and staff's logins, and the pupils' machines.
SCHOOL_START_SERVICES = {"skole-it-aula": 4.0, "brugeradministration": 2.5}
# Minutes of the agent's working time; a share of them take several times longer (a busy
# day, a missing part): that tail is what breaches.
RESPONSE_MIN = {"P1": (2, 10), "P2": (5, 40), "P3": (10, 120), "P4": (20, 240)}
WORK_MIN = {"P1": (30, 150), "P2": (45, 360), "P3": (20, 960), "P4": (30, 2400)}
UPDATE_EVERY_MIN = {"P1": (40, 55), "P2": (90, 110)}  # the update targets are 1h and 2h
PROGRESS_UPDATE = "Vi arbejder stadig på sagen og melder tilbage."
SLOW_SHARE, SLOW_FACTOR = 0.08, (2.0, 6.0)
AUTO_CLOSE_DAYS = 5  # the helpdesk system closes resolved tickets nobody confirmed
# The survey after resolution: make_day's scores, lower for a fix that did not hold.
SCORES = [int(score) for score in SCORE_WEIGHTS]
SCORE_CUM = list(itertools.accumulate(SCORE_WEIGHTS.values()))
REOPENED_SCORE_CUM = list(itertools.accumulate([6, 14, 25, 25, 30]))  # 5, 4, 3, 2, 1
_NAMESPACE_BYTES = NAMESPACE.bytes  # a property that converts on every read
ALWAYS_OPEN = {
    "timezone": "Europe/Copenhagen",
    "week": {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "holidays": {"country": None},
}


def event_id(ticket_id: str, seq: int) -> str:
    """``str(uuid5(NAMESPACE, f"{ticket_id}/{seq}"))``, as make_day's, at a quarter of the cost."""
    name = f"{ticket_id}/{seq}".encode()
    digest = hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).hexdigest()
    variant = "89ab"[int(digest[16], 16) & 0x3]  # RFC 4122's variant bits
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"


class _Ticket:
    """One ticket's story: its terms as they stand, a cursor in time, the events so far."""

    __slots__ = (
        "at_s",
        "channel",
        "department",
        "desk",
        "events",
        "function",
        "priority",
        "requester",
        "service",
        "ticket_id",
        "user",
    )

    def __init__(self, ticket_id: str, at_s: int, channel: str, department: str, service: str):
        self.ticket_id = ticket_id
        self.at_s = at_s
        self.channel = channel  # the requester's own channel
        self.department = department
        self.service = service
        self.priority = "P4"
        self.function = ""
        self.requester = ""
        self.desk: BusinessCalendar  # when agents work on it
        self.user: BusinessCalendar  # when the requester is at work
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []


class YearTeller:
    """Tells a year of tickets for one configuration, one seeded random stream."""

    def __init__(self, config: AgreementConfig, year: int, seed: int) -> None:
        self.config = config
        self.rng = random.Random(seed)
        self.arrivals = Arrivals(year, TZ)
        self.end_s = self.arrivals.end_s
        self.book = CalendarBook(config)
        self.on_call = BusinessCalendar.from_config(ALWAYS_OPEN)
        self.departments = sorted(config.departments)
        self.department_cum = list(
            itertools.accumulate(DEPARTMENT_WEIGHTS.get(d, 10) for d in self.departments)
        )
        # Departments on a round-the-clock calendar raise tickets as care works: in shifts.
        self.care = {d: len(config.calendar_for(d).week) == 7 for d in self.departments}
        self.cells = {p: _matrix_cells(config, p) for p in PRIORITY_WEIGHTS}
        self.calendar_ids = {d: config.calendar_for(d).id for d in self.departments}
        self.watched = {
            d: sorted(s for s in config.departments[d].services if s in MONITORING_SUBJECTS)
            for d in self.departments
        }
        self.ordered = {
            (d, school): self._service_weights(d, school)
            for d in self.departments
            for school in (False, True)
        }
        self.channels = {
            office: (list(weights), list(itertools.accumulate(weights.values())))
            for office, weights in ((True, CHANNEL_WEIGHTS), (False, OFF_HOURS_CHANNEL_WEIGHTS))
        }
        self.priorities = list(PRIORITY_WEIGHTS)
        self.priority_cum = list(itertools.accumulate(PRIORITY_WEIGHTS.values()))

    def _service_weights(self, department: str, school: bool) -> tuple[list[str], list[float]]:
        """The department's ordered services and their cumulative weights."""
        ordered = sorted(self.config.departments[department].services)
        weights = (
            SERVICE_WEIGHTS.get(s, 1) * (SCHOOL_START_SERVICES.get(s, 1.0) if school else 1.0)
            for s in ordered
        )
        return ordered, list(itertools.accumulate(weights))

    # -- planning -----------------------------------------------------------------------

    def plan(self, tickets: int) -> list[tuple[int, str]]:
        """Creation instants (epoch seconds) and departments, in creation order."""
        rng = self.rng
        departments = rng.choices(self.departments, cum_weights=self.department_cum, k=tickets)
        by_kind: dict[bool, list[str]] = {False: [], True: []}
        for department in departments:
            by_kind[self.care[department]].append(department)
        planned = [
            (at_s, department)
            for care, members in by_kind.items()
            for at_s, department in zip(
                self.arrivals.sample(rng, care, len(members)), members, strict=True
            )
        ]
        planned.sort()
        return planned

    # -- one ticket ---------------------------------------------------------------------

    def tell(self, ticket_id: str, at_s: int, department: str) -> _Ticket:
        """Tell one ticket's story from its creation as far as the year allows."""
        rng = self.rng
        office = self.care[department] or self.arrivals.office_hours(at_s)
        channels, cum_weights = self.channels[office]
        channel = rng.choices(channels, cum_weights=cum_weights)[0]
        service = self._service(department, channel, at_s)
        if channel == "api" and service not in MONITORING_SUBJECTS:
            channel = "web"
        ticket = _Ticket(ticket_id, at_s, channel, department, service)
        ticket.priority = rng.choices(self.priorities, cum_weights=self.priority_cum)[0]
        self._set_calendars(ticket)
        self._created(ticket)
        for step in (self._triage, self._change, self._pause, self._work, self._reopen):
            if not step(ticket):
                break
        else:
            self._rate(ticket)
            self._close(ticket)
        return ticket

    def _service(self, department: str, channel: str, at_s: int) -> str:
        rng = self.rng
        watched = self.watched[department]
        if channel == "api" and watched:
            return rng.choice(watched)
        if rng.random() < UNORDERED_SHARE:
            return _unordered_service(rng, self.config, department)
        ordered, cum_weights = self.ordered[department, self.arrivals.in_school_start(at_s)]
        return rng.choices(ordered, cum_weights=cum_weights)[0]

    def _set_calendars(self, ticket: _Ticket) -> None:
        """Agents work on the agreement's calendar (P1 round the clock); requesters on theirs."""
        calendar_id = self.calendar_ids[ticket.department]
        batch = self.config.services[ticket.service].batch
        ticket.user = self.book.get(calendar_id, False)
        ticket.desk = self.on_call if ticket.priority == "P1" else self.book.get(calendar_id, batch)

    def _after(self, ticket: _Ticket, minutes: tuple[float, float], on: BusinessCalendar) -> bool:
        """Move the cursor on by some working minutes; False once the year is over."""
        delay_s = max(1, round(self.rng.uniform(*minutes) * 60))
        at_s = on.add_us(ticket.at_s * 1_000_000, delay_s * 1_000_000) // 1_000_000
        if at_s >= self.end_s:
            return False
        ticket.at_s = max(at_s, ticket.at_s + 1)
        return True

    def _emit(self, ticket: _Ticket, kind: str, channel: str, **fields: Any) -> None:
        ticket.events.append((ticket.at_s, kind, channel, fields))

    def _agent(
        self, ticket: _Ticket, minutes: tuple[float, float], kind: str, **fields: Any
    ) -> bool:
        """An agent's event, on the desk's working time, from the helpdesk's web interface."""
        if not self._after(ticket, minutes, ticket.desk):
            return False
        self._emit(ticket, kind, "web", **fields)
        return True

    def _status(self, ticket: _Ticket, minutes: tuple[float, float], status: str) -> bool:
        return self._agent(ticket, minutes, "ticket.status_changed", status=status)

    def _note(
        self, ticket: _Ticket, minutes: tuple[float, float], visibility: str, body: str
    ) -> bool:
        """A comment by an agent of the function the ticket is with."""
        author = self.rng.choice(AGENTS[ticket.function])
        return self._agent(
            ticket, minutes, "ticket.commented", visibility=visibility, body=body, author=author
        )

    def _requester_says(self, ticket: _Ticket, body: str) -> None:
        self._emit(
            ticket,
            "ticket.commented",
            ticket.channel,
            visibility="public",
            body=body,
            author=ticket.requester,
        )

    def _slow(self, minutes: tuple[float, float]) -> tuple[float, float]:
        if self.rng.random() < SLOW_SHARE:
            factor = self.rng.uniform(*SLOW_FACTOR)
            return minutes[0] * factor, minutes[1] * factor
        return minutes

    def _priority_fields(self, ticket: _Ticket, priority: str) -> dict[str, Any]:
        if ticket.channel in ("web", "api"):  # forms and monitoring give impact and urgency
            impact, urgency = self.rng.choice(self.cells[priority])
            return {"impact": impact, "urgency": urgency}
        return {"priority": priority}  # the servicedesk agent sets it

    def _created(self, ticket: _Ticket) -> None:
        rng = self.rng
        requester = _requester(rng, ticket.department, ticket.channel)
        ticket.requester = requester["name"]
        if ticket.channel == "api":
            subject = MONITORING_SUBJECTS[ticket.service]
        else:
            subject = rng.choice(
                SUBJECTS.get(ticket.service) or [self.config.services[ticket.service].name]
            )
        fields: dict[str, Any] = {"department": ticket.department, "service": ticket.service}
        fields |= self._priority_fields(ticket, ticket.priority)
        fields |= {"requester": requester, "subject": subject}
        if ticket.channel == "email":
            fields["body"] = f"Hej Servicedesk\n\n{subject}.\n\nVenlig hilsen\n{ticket.requester}"
        elif ticket.channel == "phone":
            fields["body"] = f"Telefonnotat: {subject.lower()}. Ringer tilbage ved behov."
        self._emit(ticket, "ticket.created", ticket.channel, **fields)

    def _assign(self, ticket: _Ticket, function: str, minutes: tuple[float, float]) -> bool:
        assignment: dict[str, Any] = {"function": function}
        team = self.config.departments[ticket.department].customer_team
        if team is not None and function == "pc-software" and self.rng.random() < 0.6:
            assignment["team"] = team
        ticket.function = function
        return self._agent(ticket, minutes, "ticket.assigned", **assignment)

    def _triage(self, ticket: _Ticket) -> bool:
        """First line takes it, answers, and hands it to the function owning the service."""
        rng = self.rng
        owner: str = self.config.services[ticket.service].function
        fast = ticket.priority in ("P1", "P2")
        first = owner
        roll = rng.random()
        if roll < 0.03:
            first = rng.choice(sorted(f for f in AGENTS if f != owner))  # the wrong team
        elif roll < 0.33 and owner != "helpdesk":
            first = "helpdesk"  # first line tries before handing over
        if not self._assign(ticket, first, (1, 4) if fast else (2, 30)):
            return False
        response = self._slow(RESPONSE_MIN[ticket.priority])
        agent = rng.choice(AGENTS[first])
        if not self._agent(ticket, response, "ticket.responded", agent=agent):
            return False
        if ticket.channel == "phone" and first == owner == "helpdesk" and rng.random() < 0.4:
            # Solved while the requester is on the line.
            return self._status(ticket, (1, 10), "resolved")
        if not self._status(ticket, (0, 5), "in_progress"):
            return False
        if first != owner:
            return self._assign(ticket, owner, (10, 180))
        return True

    def _change(self, ticket: _Ticket) -> bool:
        """Now and then the priority was wrong, or the ticket belongs elsewhere."""
        if ticket.events[-1][3].get("status") == "resolved":
            return True
        roll = self.rng.random()
        if roll < 0.04 and ticket.priority != "P1":  # more users turn out to be affected
            return self._reprioritise(ticket, {"P4": "P3", "P3": "P2", "P2": "P1"})
        if roll < 0.06 and ticket.priority in ("P2", "P3"):  # fewer than feared
            return self._reprioritise(ticket, {"P2": "P3", "P3": "P4"})
        if roll < 0.08:
            return self._reclassify_service(ticket)
        if roll < 0.085:
            return self._reclassify_department(ticket)
        return True

    def _reprioritise(self, ticket: _Ticket, to: dict[str, str]) -> bool:
        priority = to[ticket.priority]
        fields = self._priority_fields(ticket, priority)
        if not self._agent(ticket, (5, 60), "ticket.priority_changed", **fields):
            return False
        ticket.priority = priority
        self._set_calendars(ticket)
        return True

    def _reclassify_service(self, ticket: _Ticket) -> bool:
        ordered = self.config.departments[ticket.department].services
        others = sorted(s for s in ordered if s != ticket.service)
        if not others:
            return True
        ticket.service = self.rng.choice(others)
        if not self._agent(ticket, (5, 30), "ticket.reclassified", service=ticket.service):
            return False
        self._set_calendars(ticket)
        owner = self.config.services[ticket.service].function
        return owner == ticket.function or self._assign(ticket, owner, (1, 20))

    def _reclassify_department(self, ticket: _Ticket) -> bool:
        candidates = sorted(
            d
            for d, department in self.config.departments.items()
            if d != ticket.department and ticket.service in department.services
        )
        if not candidates:
            return True
        ticket.department = self.rng.choice(candidates)
        fields = {"department": ticket.department}
        if not self._agent(ticket, (5, 30), "ticket.reclassified", **fields):
            return False
        self._set_calendars(ticket)
        return True

    def _pause(self, ticket: _Ticket) -> bool:
        """The agent waits on the requester or on a supplier; the clock waits too."""
        if ticket.events[-1][3].get("status") == "resolved":
            return True
        roll = self.rng.random()
        if roll < 0.2 and ticket.channel != "api":
            return self._pending_customer(ticket)
        if roll < 0.25:
            return self._pending_third_party(ticket)
        return True

    def _pending_customer(self, ticket: _Ticket) -> bool:
        rng = self.rng
        if not self._note(ticket, (5, 60), "public", rng.choice(PENDING_QUESTIONS)):
            return False
        if not self._status(ticket, (0, 2), "pending_customer"):
            return False
        if rng.random() < 0.1:  # no answer: resolved after three days of silence
            return self._status(ticket, (3 * 480, 3 * 480 + 60), "resolved")
        if not self._after(ticket, (10, 2 * 480), ticket.user):
            return False
        self._requester_says(ticket, rng.choice(REQUESTER_REPLIES))
        return self._status(ticket, (2, 60), "in_progress")

    def _pending_third_party(self, ticket: _Ticket) -> bool:
        if not self._note(ticket, (5, 60), "internal", "Venter på leverandøren."):
            return False
        if not self._status(ticket, (0, 2), "pending_third_party"):
            return False
        if not self._note(ticket, (120, 3 * 480), "internal", "Leverandøren har svaret."):
            return False
        return self._status(ticket, (0, 10), "in_progress")

    def _work(self, ticket: _Ticket) -> bool:
        """Work until resolved; P1 and P2 requesters hear of progress at their update interval."""
        if ticket.events[-1][3].get("status") == "resolved":
            return True
        rng = self.rng
        if rng.random() < 0.3 and not self._note(
            ticket, (5, 90), "internal", rng.choice(INTERNAL_NOTES)
        ):
            return False
        low, high = self._slow(WORK_MIN[ticket.priority])
        work_left_min = rng.uniform(low, high)
        step = UPDATE_EVERY_MIN.get(ticket.priority)
        while step is not None and work_left_min > step[1]:
            if not self._note(ticket, step, "public", PROGRESS_UPDATE):
                return False
            work_left_min -= (step[0] + step[1]) / 2
        return self._status(ticket, (work_left_min * 0.8, work_left_min), "resolved")

    def _reopen(self, ticket: _Ticket) -> bool:
        """The fix did not hold: the requester says so and the ticket is worked again."""
        if ticket.channel == "api" or self.rng.random() >= 0.06:
            return True
        if not self._after(ticket, (15, 2 * 480), ticket.user):
            return False
        self._requester_says(ticket, "Det virker desværre stadig ikke.")
        if not self._status(ticket, (2, 60), "in_progress"):
            return False
        return self._status(ticket, (15, 240), "resolved")

    def _close(self, ticket: _Ticket) -> None:
        """The requester confirms, or the system closes it at night after five days."""
        roll = self.rng.random()
        if roll < 0.7:
            if self._after(ticket, (5, 480), ticket.user):
                self._emit(ticket, "ticket.status_changed", "web", status="closed")
        elif roll < 0.95:
            at_s = self.arrivals.nightly_run(ticket.at_s + AUTO_CLOSE_DAYS * 86_400)
            if at_s < self.end_s:
                ticket.at_s = max(at_s, ticket.at_s + 1)
                self._emit(ticket, "ticket.status_changed", "api", status="closed")

    def _rate(self, ticket: _Ticket) -> None:
        """Now and then the requester of the resolved ticket answers the survey before it
        is closed, on their own working time; a few answer twice (the latest counts)."""
        if ticket.channel == "api":
            return  # monitoring has no requester to ask
        statuses = [fields["status"] for _, _, _, fields in ticket.events if "status" in fields]
        rng = self.rng
        if rng.random() >= RATED_SHARE:
            return
        reopened = statuses.count("resolved") > 1
        for _answer in range(2 if rng.random() < 0.03 else 1):
            if not self._after(ticket, (5, 2 * 480), ticket.user):
                return
            cum_weights = REOPENED_SCORE_CUM if reopened else SCORE_CUM
            score = rng.choices(SCORES, cum_weights=cum_weights)[0]
            fields: dict[str, Any] = {"score": score}
            if rng.random() < 0.3:
                fields["comment"] = rng.choice(RATING_COMMENTS[score])
            self._emit(ticket, "ticket.rated", ticket.channel, **fields)

    # -- the file -----------------------------------------------------------------------

    def lines(self, ticket: _Ticket) -> list[tuple[int, dict[str, Any]]]:
        """The ticket's events with the instant each arrives: most at once, a few late."""
        random, rfc3339 = self.rng.random, self.arrivals.rfc3339
        ticket_id = ticket.ticket_id
        lines = []
        for seq, (at_s, kind, channel, fields) in enumerate(ticket.events, start=1):
            event = {
                "schema_version": SCHEMA_VERSION,
                "event_id": event_id(ticket_id, seq),
                "type": kind,
                "ticket_id": ticket_id,
                "occurred_at": rfc3339(at_s, utc=channel == "api"),
                "channel": channel,
                **fields,
            }
            roll = random()  # one draw decides: on time, late, or sent twice
            if roll < LATE_SHARE:  # mostly within the hour, some the next day or two
                late_min = 1 + 59 * random() if random() < 0.8 else 60 + 2820 * random()
                lines.append((at_s + round(late_min * 60), event))
            else:
                lines.append((at_s, event))
            if roll > 1 - RESEND_SHARE:  # the same dict again, minutes later
                lines.append((at_s + 5 + round(895 * random()), event))
        return lines


def year_events(
    year: int = YEAR,
    tickets: int = TICKETS,
    seed: int = SEED,
    config: AgreementConfig | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield a year of v1 events, as JSON-ready dicts, in the order they arrive."""
    teller = YearTeller(config or load_config(DEFAULT_CONFIG), year, seed)
    pending: list[tuple[int, int, dict[str, Any]]] = []  # (arrives, tie-break, event)
    order = itertools.count()
    for number, (at_s, department) in enumerate(teller.plan(tickets), start=1):
        # Nothing told later arrives before this creation: what is due before it can go.
        while pending and pending[0][0] <= at_s:
            yield heapq.heappop(pending)[2]
        ticket = teller.tell(f"KS-{year}-{number:06d}", at_s, department)
        for arrives_s, event in teller.lines(ticket):
            heapq.heappush(pending, (arrives_s, next(order), event))
    while pending:
        yield heapq.heappop(pending)[2]


def main(argv: Sequence[str] | None = None) -> None:
    """Write a year of events as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--year", type=int, default=YEAR)
    parser.add_argument("--tickets", type=int, default=TICKETS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--out", type=Path, required=True, help="the JSON Lines file to write")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    events = 0
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with args.out.open("w", encoding="utf-8") as out:
        for event in year_events(args.year, args.tickets, args.seed, load_config(args.config)):
            out.write(dumps(event) + "\n")
            events += 1
    seconds = time.perf_counter() - began
    rate = f"{seconds:.1f} s, {events / seconds:,.0f} events/s"
    print(
        f"wrote {events:,} events of {args.tickets:,} tickets to {args.out} ({rate})",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
