"""Generate ``examples/day.jsonl``: a realistic Monday of tickets for the example config.

Deterministic: the same seed and configuration give byte-identical output. Run it again
after changing ``config/``::

    .venv/bin/python examples/make_day.py

Every ticket's events are in time order and the lines are in global time order. The
requester's own actions (raising the ticket, replying) carry the ticket's channel; the
agents work in the helpdesk's web interface, so their events carry ``web``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from engine.config import AgreementConfig, load_config
from engine.events import SCHEMA_VERSION, parse_event

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "config"
DEFAULT_OUTPUT = REPO / "examples" / "day.jsonl"

SEED = 20261123
DAY = date(2026, 11, 23)  # a Monday in winter time: offsets are +01:00
TZ = ZoneInfo("Europe/Copenhagen")
NAMESPACE = uuid.UUID("c2cee961-4936-4e08-b571-9186267f7c47")
TICKETS = 150
FIRST_TICKET_NUMBER = 48113
DAY_START_S = 7 * 3600 + 45 * 60  # early birds call before the desk opens at 08:00
DAY_END_S = 16 * 3600  # nothing happens after the office calendar closes

DEPARTMENT_WEIGHTS = {"sof": 30, "buf": 28, "tmf": 20, "sf": 20, "bif": 16, "kff": 14, "okf": 14}
SERVICE_WEIGHTS = {
    "pc-arbejdsplads": 5,
    "brugeradministration": 5,
    "skole-it-aula": 5,
    "omsorgssystem": 5,
    "email-kalender": 3,
    "borgerservice-systemer": 3,
    "print": 3,
    "esdh": 2,
    "servicedesk": 2,
    "mobiltelefoni": 2,
}
# Ordered by anyone now and then, whether their department has agreed on them or not.
OFTEN_UNORDERED = ("hardware-bestilling", "licensstyring", "kunderaadgivning", "print")
# Tickets raised per hour of the day: a morning peak, a lunch dip.
HOURLY_WEIGHTS = {7: 1, 8: 14, 9: 14, 10: 12, 11: 9, 12: 5, 13: 8, 14: 7, 15: 4}
CHANNEL_WEIGHTS = {"email": 34, "phone": 26, "web": 34, "api": 6}
PRIORITY_WEIGHTS = {"P1": 1, "P2": 10, "P3": 52, "P4": 37}
RESPONSE_MIN = {"P1": (2, 10), "P2": (5, 40), "P3": (10, 120), "P4": (20, 240)}
WORK_MIN = {"P1": (30, 150), "P2": (45, 300), "P3": (10, 360), "P4": (15, 480)}
UPDATE_EVERY_MIN = {"P1": (40, 55), "P2": (90, 110)}  # the update targets are 1h and 2h

SUBJECTS = {
    "netvaerk-vpn": [
        "VPN forbinder ikke hjemmefra",
        "Intet trådløst netværk i mødelokale 2.14",
        "Langsomt netværk på Rådhuset, 3. sal",
        "VPN afbryder hvert tiende minut",
    ],
    "email-kalender": [
        "Kan ikke åbne fællespostkassen",
        "Outlook beder om adgangskode hele tiden",
        "Mødeindkaldelser forsvinder fra kalenderen",
        "Mail til ekstern modtager bliver afvist",
    ],
    "hosting-fagsystemer": [
        "Fagsystemet svarer ikke",
        "Fejl 500 ved login i fagsystemet",
        "Fagsystemet er meget langsomt i dag",
    ],
    "opus-loen": [
        "Fravær overføres ikke til Opus",
        "Fejl i lønkørslen for timelønnede",
        "Kan ikke godkende timesedler i Opus",
    ],
    "backup-gendannelse": [
        "Gendan slettet mappe på fællesdrevet",
        "Gendan slettet e-mail fra sidste uge",
    ],
    "datavarehus": [
        "Ledelsesrapporten viser fredagens tal",
        "Fejl i rapport over sygefravær",
    ],
    "pc-arbejdsplads": [
        "Pc'en starter ikke",
        "Skærmen blinker efter opdatering",
        "Teams lukker ned ved opstart",
        "Kan ikke installere program fra Softwarecenter",
        "Word fryser, når jeg gemmer",
        "Dockingstation virker ikke",
    ],
    "esdh": [
        "Kan ikke journalisere dokument i ESDH",
        "Sag er låst af tidligere medarbejder",
        "ESDH er meget langsomt",
        "Mangler adgang til sagsmappe",
    ],
    "borgerservice-systemer": [
        "Køsystemet kalder ikke numre op",
        "Bookingsystemet viser ingen ledige tider",
        "Selvbetjeningen giver fejl ved MitID-login",
    ],
    "omsorgssystem": [
        "Cura-appen synkroniserer ikke på mobilen",
        "Kan ikke se dagens besøgsplan i Cura",
        "Cura logger ud midt i et besøg",
        "Kan ikke dokumentere i Cura på plejecentret",
    ],
    "skole-it-aula": [
        "Kan ikke logge på Aula",
        "Elev-pc'er får ikke netværk i 7.B",
        "Aula viser ikke nye beskeder",
        "Skemaet bliver ikke overført til Aula",
        "Interaktiv tavle kan ikke forbinde",
    ],
    "print": [
        "Printeren på 2. sal udskriver ikke",
        "Follow-me-print virker ikke",
        "Scan til mail virker ikke",
        "Papirstop i multifunktionsprinteren",
    ],
    "mobiltelefoni": [
        "Ny mobiltelefon skal sættes op",
        "Mobilen modtager ikke arbejdsmail",
        "Mistet telefon skal spærres",
        "Sim-kortet virker ikke",
    ],
    "servicedesk": [
        "Hvordan deler jeg min kalender?",
        "Hjælp til opsætning af to skærme",
        "Spørgsmål om selvbetjeningsportalen",
    ],
    "brugeradministration": [
        "Nulstil adgangskode",
        "Ny medarbejder skal oprettes pr. 1. december",
        "MFA virker ikke på ny telefon",
        "Medarbejder fratræder, luk adgange",
        "Mangler rettigheder til fællesdrev",
    ],
    "kunderaadgivning": [
        "Rådgivning om nyt bookingsystem",
        "Tilbud på digital signering",
    ],
    "udviklingsbestillinger": [
        "Ny rapport over byggesager",
        "Tilpasning af integration til GIS",
        "Dataudtræk til analyse",
    ],
    "hardware-bestilling": [
        "Bestilling af 12 elev-pc'er",
        "Ekstra skærm til hjemmearbejdsplads",
        "Headset til ny medarbejder",
    ],
    "fakturering": [
        "Spørgsmål til faktura for oktober",
        "Forkert omkostningssted på faktura",
    ],
    "licensstyring": [
        "Mangler licens til Adobe Acrobat",
        "Visio-licens skal frigives",
    ],
    "aftalestyring": [
        "Kvartalsrapport for servicemål mangler",
        "Spørgsmål til SLA-målinger for 3. kvartal",
    ],
}
MONITORING_SUBJECTS = {  # raised by the monitoring system through the api
    "netvaerk-vpn": "Overvågning: switch på Sundholm svarer ikke",
    "email-kalender": "Overvågning: mailkøen vokser på Exchange",
    "hosting-fagsystemer": "Overvågning: disk 92 % fuld på fagsystemserver",
    "backup-gendannelse": "Overvågning: backupjob fejlede i nat",
    "datavarehus": "Overvågning: natlig indlæsning blev ikke færdig",
    "opus-loen": "Overvågning: integration til Opus Løn fejler",
}
# fmt: off
FIRST_NAMES = [
    "Anne", "Mette", "Hanne", "Lone", "Susanne", "Camilla", "Maria", "Louise", "Sofie", "Peter",
    "Jens", "Lars", "Søren", "Henrik", "Mads", "Rasmus", "Anders", "Jørgen", "Birgitte", "Ida",
    "Emma", "Thomas", "Martin", "Kristian", "Ahmad", "Fatima",
]
LAST_NAMES = [
    "Jensen", "Nielsen", "Hansen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
    "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen",
    "Johansen", "Møller", "Mortensen", "Østergaard", "Ali",
]
# fmt: on
AGENTS = {
    "helpdesk": ["Mette Lund", "Jonas Holm", "Aisha Karimi"],
    "pc-software": ["Kasper Friis", "Line Bach", "Omar Haddad"],
    "server-network": ["Bo Vestergaard", "Nina Krogh"],
    "sales": ["Karen Dahl"],
    "administration": ["Michael Brandt"],
}
PENDING_QUESTIONS = [
    "Kan du sende et skærmbillede af fejlen?",
    "Hvornår passer det, at vi overtager din skærm?",
    "Hvilket lokale sidder du i?",
    "Kan du bekræfte dit telefonnummer?",
    "Sker det også på en anden pc?",
]
REQUESTER_REPLIES = [
    "Skærmbillede vedhæftet.",
    "Det passer fint efter frokost.",
    "Lokale 2.14 ved kopirummet.",
    "Ja, det gør det også på min kollegas pc.",
    "Nummeret er det samme som i signaturen.",
]
INTERNAL_NOTES = [
    "Kendt fejl efter opdateringen i weekenden, se problemsag.",
    "Venter på leverandøren.",
    "Tjekket logfiler, intet usædvanligt.",
    "Overdrager til kollega med adgang til serveren.",
]
# The survey after resolution (ticket.rated): a third of the requesters answer it, most of
# them content; a few write a line, and now and then one answers again, a day's thought
# later (the latest rating counts).
RATED_SHARE = 0.35
SCORE_WEIGHTS = {"5": 46, "4": 30, "3": 11, "2": 7, "1": 6}
RATING_COMMENTS = {
    5: ["Hurtig og venlig hjælp, tak!", "Super, det virker igen."],
    4: ["Fint, men det tog lidt tid.", "Godt løst."],
    3: ["Det virker nu, men jeg måtte rykke for svar."],
    2: ["Lang ventetid og ingen besked undervejs."],
    1: ["Problemet er ikke løst, sagen blev bare lukket."],
}


@dataclass
class _Ticket:
    """One ticket's story: a cursor in time and the events told so far."""

    ticket_id: str
    channel: str
    at_s: float
    events: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self,
        rng: random.Random,
        delay_min: tuple[float, float],
        kind: str,
        channel: str,
        **fields: Any,
    ) -> bool:
        """Append an event some minutes after the last; refuse it after closing time."""
        at_s = self.at_s + rng.uniform(*delay_min) * 60
        if at_s >= DAY_END_S:
            return False
        self.at_s = at_s
        occurred = datetime(DAY.year, DAY.month, DAY.day, tzinfo=TZ) + timedelta(
            seconds=round(at_s)
        )
        seq = len(self.events) + 1
        self.events.append(
            {
                "schema_version": SCHEMA_VERSION,
                "event_id": str(uuid.uuid5(NAMESPACE, f"{self.ticket_id}/{seq}")),
                "type": kind,
                "ticket_id": self.ticket_id,
                "occurred_at": occurred.isoformat(timespec="seconds"),
                "channel": channel,
                **fields,
            }
        )
        return True


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _ascii_mailbox(text: str) -> str:
    for letter, plain in (("æ", "ae"), ("ø", "oe"), ("å", "aa")):
        text = text.replace(letter, plain)
    return text.lower()


def _requester(rng: random.Random, department: str, channel: str) -> dict[str, str]:
    if channel == "api":
        return {"name": "Driftsovervågning"}
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    requester = {"name": f"{first} {last}"}
    if channel == "phone":
        requester["phone"] = f"+45 33 66 {rng.randint(10, 99)} {rng.randint(10, 99)}"
    else:
        requester["email"] = f"{_ascii_mailbox(first)}.{_ascii_mailbox(last)}@{department}.kk.dk"
    return requester


def _created_at_s(rng: random.Random) -> float:
    hour = int(_pick(rng, {str(h): w for h, w in HOURLY_WEIGHTS.items()}))
    low = max(hour * 3600, DAY_START_S)
    high = min((hour + 1) * 3600, DAY_END_S - 15 * 60)
    return rng.uniform(low, high)


def _matrix_cells(config: AgreementConfig, priority: str) -> list[tuple[str, str]]:
    """The (impact, urgency) pairs the contract's matrix maps to this priority."""
    matrix = config.general_contract.priority_matrix
    return [
        (impact, urgency)
        for impact, row in matrix.items()
        for urgency, cell in row.items()
        if cell == priority
    ]


def _choose_service(rng: random.Random, config: AgreementConfig, department: str) -> str:
    ordered = list(config.departments[department].services)
    return rng.choices(ordered, weights=[SERVICE_WEIGHTS.get(s, 1) for s in ordered])[0]


def _unordered_service(rng: random.Random, config: AgreementConfig, department: str) -> str:
    """A service on the positive list the department has not ordered: out of agreement."""
    ordered = config.departments[department].services
    candidates = [s for s in OFTEN_UNORDERED if s not in ordered] or list(ordered)
    return rng.choice(candidates)


def _created(
    rng: random.Random,
    config: AgreementConfig,
    ticket: _Ticket,
    department: str,
    service: str,
    subject: str,
    priority: str,
) -> dict[str, Any]:
    requester = _requester(rng, department, ticket.channel)
    fields: dict[str, Any] = {"department": department, "service": service}
    if ticket.channel in ("web", "api"):  # forms and monitoring give impact and urgency
        impact, urgency = rng.choice(_matrix_cells(config, priority))
        fields |= {"impact": impact, "urgency": urgency}
    else:  # the servicedesk agent sets the priority
        fields["priority"] = priority
    fields |= {"requester": requester, "subject": subject}
    if ticket.channel == "email":
        fields["body"] = f"Hej Servicedesk\n\n{subject}.\n\nVenlig hilsen\n{requester['name']}"
    elif ticket.channel == "phone":
        fields["body"] = f"Telefonnotat: {subject.lower()}. Ringer tilbage ved behov."
    return fields


def _tell(
    rng: random.Random,
    config: AgreementConfig,
    ticket: _Ticket,
    department: str,
    service: str,
    subject: str,
    priority: str,
) -> None:
    """Tell one ticket's story from creation as far as the day allows."""
    requester_channel = ticket.channel
    created = _created(rng, config, ticket, department, service, subject, priority)
    requester_name = created["requester"]["name"]
    ticket.add(rng, (0, 0), "ticket.created", requester_channel, **created)
    function = config.services[service].function
    agent = rng.choice(AGENTS[function])
    team = config.departments[department].customer_team
    fast = priority in ("P1", "P2")

    assignment: dict[str, Any] = {"function": function}
    if team is not None and function == "pc-software" and rng.random() < 0.6:
        assignment["team"] = team
    if not ticket.add(rng, (1, 4) if fast else (2, 20), "ticket.assigned", "web", **assignment):
        return
    if not ticket.add(rng, RESPONSE_MIN[priority], "ticket.responded", "web", agent=agent):
        return
    if not ticket.add(rng, (0, 5), "ticket.status_changed", "web", status="in_progress"):
        return

    roll = rng.random()
    if roll < 0.05 and priority in ("P3", "P4"):  # more users turn out to be affected
        raised = {"P4": "P3", "P3": "P2"}[priority]
        change: dict[str, Any] = {"priority": raised}
        if requester_channel == "web":  # reassessed on the form's terms
            impact, urgency = rng.choice(_matrix_cells(config, raised))
            change = {"impact": impact, "urgency": urgency}
        if ticket.add(rng, (5, 40), "ticket.priority_changed", "web", **change):
            priority, fast = raised, raised == "P2"
    elif roll < 0.10:  # filed under the wrong service
        others = [s for s in config.departments[department].services if s != service]
        service = rng.choice(sorted(others))
        if not ticket.add(rng, (5, 30), "ticket.reclassified", "web", service=service):
            return
        if config.services[service].function != function:
            function = config.services[service].function
            agent = rng.choice(AGENTS[function])
            if not ticket.add(rng, (1, 10), "ticket.assigned", "web", function=function):
                return
    elif roll < 0.12:  # raised in the wrong department's name
        candidates = sorted(
            d
            for d, ordering in config.departments.items()
            if d != department and service in ordering.services
        )
        if candidates:
            department = rng.choice(candidates)
            if not ticket.add(rng, (5, 30), "ticket.reclassified", "web", department=department):
                return

    if rng.random() < 0.25:  # the agent needs something from the requester
        question = rng.choice(PENDING_QUESTIONS)
        if not ticket.add(
            rng,
            (5, 60),
            "ticket.commented",
            "web",
            visibility="public",
            body=question,
            author=agent,
        ):
            return
        if not ticket.add(rng, (0, 2), "ticket.status_changed", "web", status="pending_customer"):
            return
        if not ticket.add(
            rng,
            (10, 150),
            "ticket.commented",
            requester_channel,
            visibility="public",
            body=rng.choice(REQUESTER_REPLIES),
            author=requester_name,
        ):
            return
        if not ticket.add(rng, (2, 30), "ticket.status_changed", "web", status="in_progress"):
            return

    if rng.random() < 0.3 and not ticket.add(
        rng,
        (5, 90),
        "ticket.commented",
        "web",
        visibility="internal",
        body=rng.choice(INTERNAL_NOTES),
        author=agent,
    ):
        return

    # Work until resolved; P1 and P2 requesters hear of progress at their update interval.
    work_left_min = rng.uniform(*WORK_MIN[priority])
    while fast and work_left_min > UPDATE_EVERY_MIN[priority][1]:
        step = UPDATE_EVERY_MIN[priority]
        if not ticket.add(
            rng,
            step,
            "ticket.commented",
            "web",
            visibility="public",
            body="Vi arbejder stadig på sagen og melder tilbage.",
            author=agent,
        ):
            return
        work_left_min -= (step[0] + step[1]) / 2
    if not ticket.add(
        rng, (work_left_min * 0.8, work_left_min), "ticket.status_changed", "web", status="resolved"
    ):
        return

    if rng.random() < 0.06:  # the fix did not hold: the requester reopens it
        if not ticket.add(
            rng,
            (15, 90),
            "ticket.commented",
            requester_channel,
            visibility="public",
            body="Det virker desværre stadig ikke.",
            author=requester_name,
        ):
            return
        if not ticket.add(rng, (2, 20), "ticket.status_changed", "web", status="in_progress"):
            return
        if not ticket.add(rng, (15, 120), "ticket.status_changed", "web", status="resolved"):
            return
    if rng.random() < 0.45:  # the requester confirms the same day
        ticket.add(rng, (10, 120), "ticket.status_changed", "web", status="closed")


def _rate(ticket: _Ticket, seed: int) -> None:
    """Now and then the requester of a resolved ticket answers the survey.

    From a random stream of the ticket's own, so that the rest of the day is drawn as it
    was before ratings were told.
    """
    resolved = any(event.get("status") == "resolved" for event in ticket.events)
    if ticket.channel == "api" or not resolved:  # monitoring has no requester to ask
        return
    rng = random.Random(f"{seed}/{ticket.ticket_id}/rating")
    if rng.random() >= RATED_SHARE:
        return
    for _answer in range(2 if rng.random() < 0.05 else 1):
        score = int(_pick(rng, SCORE_WEIGHTS))
        fields: dict[str, Any] = {"score": score}
        if rng.random() < 0.4:
            fields["comment"] = rng.choice(RATING_COMMENTS[score])
        if not ticket.add(rng, (5, 90), "ticket.rated", ticket.channel, **fields):
            return


def generate(config: AgreementConfig, seed: int = SEED) -> list[dict[str, Any]]:
    """Return the day's events in global time order."""
    rng = random.Random(seed)
    # (start, preset department, service, subject, priority) per ticket; a short Aula
    # outage from 10:05, during which six schools call within twenty minutes.
    outage_start_s = 10 * 3600 + 5 * 60
    planned: list[tuple[float, tuple[str, str, str, str] | None]] = [
        (_created_at_s(rng), None) for _ in range(TICKETS - 6)
    ]
    planned += [
        (
            outage_start_s + i * 200,
            ("buf", "skole-it-aula", "Kan ikke logge på Aula", "P1" if i == 0 else "P2"),
        )
        for i in range(6)
    ]
    planned.sort(key=lambda plan: plan[0])

    stories: list[_Ticket] = []
    for number, (at_s, preset) in enumerate(planned, start=FIRST_TICKET_NUMBER):
        if preset is not None:
            channel = "phone"
            department, service, subject, priority = preset
        else:
            channel = _pick(rng, CHANNEL_WEIGHTS)
            department = _pick(rng, DEPARTMENT_WEIGHTS)
            if rng.random() < 0.02:
                service = _unordered_service(rng, config, department)
            else:
                service = _choose_service(rng, config, department)
            if channel == "api" and service not in MONITORING_SUBJECTS:
                channel = "web"
            subject = (
                MONITORING_SUBJECTS[service] if channel == "api" else rng.choice(SUBJECTS[service])
            )
            priority = _pick(rng, PRIORITY_WEIGHTS)
        ticket = _Ticket(ticket_id=f"KS-{number}", channel=channel, at_s=at_s)
        _tell(rng, config, ticket, department, service, subject, priority)
        _rate(ticket, seed)
        stories.append(ticket)

    events = [event for ticket in stories for event in ticket.events]
    # Stable: same-second events keep their ticket's order.
    events.sort(key=lambda event: datetime.fromisoformat(event["occurred_at"]))
    return events


def render(events: Sequence[dict[str, Any]]) -> str:
    """Return the events as JSON lines, each checked against the contract."""
    lines = [json.dumps(event, ensure_ascii=False) for event in events]
    for line in lines:
        parse_event(line)
    return "".join(f"{line}\n" for line in lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Write the day's events as JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    events = generate(load_config(args.config), args.seed)
    args.output.write_text(render(events), encoding="utf-8")
    tickets = len({event["ticket_id"] for event in events})
    print(f"wrote {len(events)} events of {tickets} tickets to {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
