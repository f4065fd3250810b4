"""Event streams for tests: realistic tickets, deterministic for a seed."""

from __future__ import annotations

import json
import random
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

_NAMESPACE = UUID("3b0a5f4e-8a53-4f0c-9a53-6b0c6b5d1f10")
CPH = ZoneInfo("Europe/Copenhagen")
# Department -> services it has ordered in the example configuration.
ORDERED = {
    "buf": ["esdh", "skole-it-aula", "pc-arbejdsplads"],
    "sof": ["omsorgssystem", "mobiltelefoni"],
    "okf": ["opus-loen", "datavarehus", "esdh"],
    "tmf": ["esdh", "print"],
}
FUNCTION_OF = {
    "esdh": "pc-software", "skole-it-aula": "pc-software", "pc-arbejdsplads": "pc-software",
    "omsorgssystem": "pc-software", "mobiltelefoni": "pc-software", "opus-loen": "server-network",
    "datavarehus": "server-network", "print": "pc-software",
}  # fmt: skip


def event(type_: str, ticket: str, seq: int, at: datetime, **fields: Any) -> dict[str, Any]:
    """One event as a frontend would send it, with an id stable for (ticket, seq)."""
    return {
        "schema_version": 1,
        "event_id": str(uuid5(_NAMESPACE, f"{ticket}/{seq}")),
        "type": type_,
        "ticket_id": ticket,
        "occurred_at": at.isoformat(),
        "channel": "web",
        **fields,
    }


def ticket_events(ticket: str, start: datetime, rng: random.Random) -> list[dict[str, Any]]:
    """A ticket's life: created, assigned, responded, perhaps pending, resolved, closed."""
    department = rng.choice(sorted(ORDERED))
    service = rng.choice(ORDERED[department])
    at = start
    events = [
        event("ticket.created", ticket, 0, at, department=department, service=service,
              priority=rng.choice(["P1", "P2", "P3", "P4"]), subject=f"Sag {ticket}",
              requester={"name": "Bruger"}),
    ]  # fmt: skip

    def later(minutes: int) -> datetime:
        nonlocal at
        at = at + timedelta(minutes=rng.randint(1, minutes))
        return at

    events.append(event("ticket.assigned", ticket, 1, later(20), function=FUNCTION_OF[service]))
    events.append(event("ticket.responded", ticket, 2, later(60)))
    changed = "ticket.status_changed"
    if rng.random() < 0.3:
        events.append(event(changed, ticket, 3, later(60), status="pending_customer"))
        events.append(event(changed, ticket, 4, later(240), status="in_progress"))
    events.append(event(changed, ticket, 5, later(300), status="resolved"))
    events.append(event(changed, ticket, 6, later(600), status="closed"))
    return events


def _monday_years_ahead(years: int = 4) -> datetime:
    """08:00 on a late-November Monday (no Danish holiday near) some years from now."""
    day = date(date.today().year + years, 11, 20)
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime.combine(day, time(8), tzinfo=CPH)


# No escalation step falls due while a test runs, so intake tests are not joined by a
# flood of notices for steps long past. Escalation tests pick their own instants.
FUTURE_MONDAY = _monday_years_ahead()
# How far ahead of its clock an engine under test takes events (SLA_ENGINE_MAX_AHEAD_S):
# far enough for streams dated on FUTURE_MONDAY, which a real engine would refuse.
AHEAD_S = 6 * 366 * 24 * 3600


def stream(
    tickets: int, seed: int = 1, prefix: str = "T", day: datetime = FUTURE_MONDAY
) -> list[dict[str, Any]]:
    """Events of ``tickets`` tickets created over a working day, in occurred_at order."""
    rng = random.Random(seed)
    events = []
    for n in range(tickets):
        start = day + timedelta(seconds=rng.randrange(8 * 3600))
        events += ticket_events(f"{prefix}-{n}", start, rng)
    events.sort(key=lambda e: e["occurred_at"])
    return events


def lines(events: list[dict[str, Any]]) -> list[bytes]:
    """The events as message bodies."""
    return [json.dumps(e).encode() for e in events]
