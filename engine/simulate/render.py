"""The simulator's input and output: events from JSON Lines; timeline and compliance."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError

from engine.events import TicketEvent, parse_event
from engine.events.lines import described, numbered_lines
from engine.reporting.compliance import (
    OLA_COLUMNS,
    SLA_BY,
    SLA_COLUMNS,
    ola_records,
    sla_records,
)
from engine.reporting.output import Format, Record, write
from engine.satisfaction import SATISFACTION_COLUMNS, count_ratings, satisfaction_records
from engine.simulate.core import Simulation
from engine.simulate.notices import NoticeVolume, messages_by_key

MAX_PROBLEMS = 20
TIMELINE_COLUMNS = (
    "due_at",
    "ticket_id",
    "department",
    "service",
    "priority",
    "metric",
    "agreement",
    "function",
    "step",
    "tier",
    "state",
)


class EventFileError(Exception):
    """Lines of an events file that are not events of the contract."""

    def __init__(self, problems: Sequence[str]) -> None:
        shown = list(problems[:MAX_PROBLEMS])
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown + ([f"... and {more} more"] if more else [])))
        self.problems = problems


def read_events(path: Path) -> list[TicketEvent]:
    """Every event of a JSON Lines file; EventFileError naming each bad line."""
    events: list[TicketEvent] = []
    problems: list[str] = []
    for number, raw in numbered_lines(path):
        try:
            events.append(parse_event(raw))
        except ValidationError as exc:
            problems.append(f"{path}:{number}: {described(exc)}")
    if problems:
        raise EventFileError(problems)
    return events


def timeline(simulation: Simulation) -> Iterator[Record]:
    for step in simulation.steps:
        yield {
            "due_at": step.due_at.isoformat(),
            "ticket_id": step.ticket_id,
            "department": step.department,
            "service": step.service,
            "priority": step.priority,
            "metric": step.metric,
            "agreement": step.agreement,
            "function": step.function,
            "step": step.step,
            "tier": step.tier,
            "state": step.state,
        }


NOTICE_COLUMNS = (
    "channel",
    "recipient",
    "name",
    "notices",
    "messages",
    "alone",
    "digests",
    "held",
    "max_day_before",
    "max_day",
    "largest_digest",
)
NOTICE_COMPARE_COLUMNS = (
    "channel",
    "recipient",
    "notices_a",
    "notices_b",
    "messages_a",
    "messages_b",
    "max_day_a",
    "max_day_b",
)


def notice_records(volume: NoticeVolume) -> list[Record]:
    """A record per recipient and channel: notices, messages, digests, the busiest day."""
    return [
        {
            "channel": r.channel,
            "recipient": r.recipient,
            "name": r.name,
            "notices": r.notices,
            "messages": r.messages,
            "alone": r.alone,
            "digests": r.digests,
            "held": r.held,
            "max_day_before": r.max_day_before,
            "max_day": r.max_day,
            "largest_digest": r.largest_digest,
        }
        for r in volume.recipients
    ]


def notice_totals(volume: NoticeVolume, suffix: str = "") -> dict[str, Any]:
    """The volume in a few figures: before and after budgets, and the daily number."""
    busiest = max((r.max_day for r in volume.recipients), default=0)
    return {
        f"notices{suffix}": volume.notices,
        f"messages{suffix}": volume.messages,
        f"digests{suffix}": sum(r.digests for r in volume.recipients),
        f"max_day_messages{suffix}": busiest,
        f"daily_max_messages{suffix}": volume.daily_max_messages,
        f"recipients_over_daily{suffix}": len(volume.over_daily),
        f"budgeted{suffix}": volume.budgeted,
    }


def print_simulation(
    simulation: Simulation,
    fmt: Format,
    out: TextIO,
    *,
    with_timeline: bool = True,
    volume: NoticeVolume | None = None,
) -> None:
    """The timeline of fired steps, compliance per SLA group and per OLA function, the
    requesters' satisfaction per department and service, then the notices per recipient."""
    sections: list[tuple[str, Sequence[Record], Sequence[str]]] = []
    if with_timeline:
        sections.append(("timeline", list(timeline(simulation)), TIMELINE_COLUMNS))
    sections.append(("sla", sla_records(simulation.outcomes), SLA_COLUMNS))
    sections.append(("ola", ola_records(simulation.outcomes), OLA_COLUMNS))
    satisfaction = satisfaction_records(count_ratings(simulation.ratings))
    sections.append(("satisfaction", satisfaction, SATISFACTION_COLUMNS))
    totals = _totals(simulation)
    if volume is not None:
        sections.append(("notices", notice_records(volume), NOTICE_COLUMNS))
        totals |= notice_totals(volume)
    _print_sections(sections, fmt, out, totals)


def _notice_comparison(first: NoticeVolume, second: NoticeVolume) -> list[Record]:
    a, b = messages_by_key(first), messages_by_key(second)
    records: list[Record] = []
    for key in sorted(a.keys() | b.keys()):
        left, right = a.get(key), b.get(key)
        records.append(
            {
                "channel": key[0],
                "recipient": key[1],
                "notices_a": left.notices if left else 0,
                "notices_b": right.notices if right else 0,
                "messages_a": left.messages if left else 0,
                "messages_b": right.messages if right else 0,
                "max_day_a": left.max_day if left else 0,
                "max_day_b": right.max_day if right else 0,
            }
        )
    return records


def print_comparison(
    first: Simulation,
    second: Simulation,
    names: tuple[str, str],
    fmt: Format,
    out: TextIO,
    volumes: tuple[NoticeVolume, NoticeVolume] | None = None,
) -> None:
    """Both configurations' breaches and compliance, side by side, per SLA group, then
    the notices per recipient under each."""
    a, b = (
        {tuple(r[key] for key in SLA_BY): r for r in sla_records(simulation.outcomes)}
        for simulation in (first, second)
    )
    records: list[Record] = []
    for group in sorted(a.keys() | b.keys()):
        left, right = a.get(group), b.get(group)
        record: dict[str, Any] = dict(zip(SLA_BY, group, strict=True))
        record["tickets"] = max(r["tickets"] for r in (left, right) if r is not None)
        for suffix, side in (("a", left), ("b", right)):
            record[f"breached_{suffix}"] = side["breached"] if side else 0
            record[f"compliance_{suffix}_pct"] = side["compliance_pct"] if side else None
        both = (record["compliance_a_pct"], record["compliance_b_pct"])
        record["change_pp"] = None if None in both else round(both[1] - both[0], 1)
        records.append(record)
    columns: tuple[str, ...] = (
        *SLA_BY,
        "tickets",
        "breached_a",
        "breached_b",
        "compliance_a_pct",
        "compliance_b_pct",
        "change_pp",
    )
    totals = {
        "config_a": names[0],
        "config_b": names[1],
        "breaches_a": first.breaches,
        "breaches_b": second.breaches,
        "steps_a": len(first.steps),
        "steps_b": len(second.steps),
    }
    sections: list[tuple[str, Sequence[Record], Sequence[str]]] = [("compare", records, columns)]
    if volumes is not None:
        compared = _notice_comparison(*volumes)
        sections.append(("notices_compare", compared, NOTICE_COMPARE_COLUMNS))
        totals |= notice_totals(volumes[0], "_a") | notice_totals(volumes[1], "_b")
    _print_sections(sections, fmt, out, totals)


def _totals(simulation: Simulation) -> dict[str, Any]:
    return {
        "until": simulation.until.isoformat(),
        "events": simulation.events,
        "tickets": simulation.tickets,
        "duplicates": simulation.duplicates,
        "refused": len(simulation.refused),
        "waiting_for_creation": simulation.waiting,
        "steps_fired": len(simulation.steps),
        "breaches": simulation.breaches,
        "rated_tickets": len(simulation.ratings),
    }


def _print_sections(
    sections: Sequence[tuple[str, Sequence[Record], Sequence[str]]],
    fmt: Format,
    out: TextIO,
    totals: dict[str, Any],
) -> None:
    if fmt == "jsonl":  # one stream of records, each saying which section it is of
        for name, records, columns in sections:
            write([{"section": name, **r} for r in records], ("section", *columns), fmt, out)
        write([{"section": "totals", **totals}], ("section", *totals), fmt, out)
        return
    if fmt == "json":
        document = {
            name: [{c: r.get(c) for c in columns} for r in records]
            for name, records, columns in sections
        }
        out.write(json.dumps({**document, "totals": totals}, ensure_ascii=False, indent=2))
        out.write("\n")
        return
    for index, (name, records, columns) in enumerate(sections):
        if index:
            out.write("\n")
        if fmt == "table":
            out.write(f"{_TITLES[name]}\n")
        write(records, columns, fmt, out)
    out.write("\n")
    if fmt == "table":
        out.write("totals: " + ", ".join(f"{k} {v}" for k, v in totals.items()) + "\n")
    else:
        write([totals], tuple(totals), fmt, out)


_TITLES = {
    "timeline": "Steps fired (warnings, breaches, escalations), by due instant",
    "sla": "SLA compliance per department, service, priority and metric",
    "ola": "OLA compliance per provider function",
    "satisfaction": "Satisfaction per department and service: rated tickets (the latest rating"
    " of each), mean score, share of 4-5",
    "compare": "Breaches and compliance under two configurations (a, b)",
    "notices": "Notices per recipient and channel: alone, in digests, and the busiest day",
    "notices_compare": "Notices and messages per recipient under two configurations (a, b)",
}
