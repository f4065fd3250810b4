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
from engine.simulate.core import Simulation

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


def print_simulation(
    simulation: Simulation, fmt: Format, out: TextIO, *, with_timeline: bool = True
) -> None:
    """The timeline of fired steps, then compliance per SLA group and per OLA function."""
    sections: list[tuple[str, Sequence[Record], Sequence[str]]] = []
    if with_timeline:
        sections.append(("timeline", list(timeline(simulation)), TIMELINE_COLUMNS))
    sections.append(("sla", sla_records(simulation.outcomes), SLA_COLUMNS))
    sections.append(("ola", ola_records(simulation.outcomes), OLA_COLUMNS))
    _print_sections(sections, fmt, out, _totals(simulation))


def print_comparison(
    first: Simulation, second: Simulation, names: tuple[str, str], fmt: Format, out: TextIO
) -> None:
    """Both configurations' breaches and compliance, side by side, per SLA group."""
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
    _print_sections([("compare", records, columns)], fmt, out, totals)


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
    "compare": "Breaches and compliance under two configurations (a, b)",
}
