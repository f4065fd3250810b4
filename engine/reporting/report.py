"""SLA and OLA compliance of a period's tickets, read from the clocks in the store.

``clock_outcomes`` reads the clocks, ``render_report`` prints what
``engine.reporting.compliance.summarize`` makes of them: the same counting as the
simulator's, so a simulated report and a stored one can be set side by side.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from contextlib import aclosing
from datetime import datetime
from typing import Any, TextIO

from engine.reporting.compliance import (
    MEASURES,
    OLA_COLUMNS,
    SLA_COLUMNS,
    TOTAL_MEASURES,
    ClockOutcome,
    ola_records,
    outcome_of,
    sla_records,
    total_records,
)
from engine.reporting.names import Names
from engine.reporting.output import Format, Record, write
from engine.reporting.satisfaction import satisfaction_flat, write_satisfaction_table
from engine.reporting.window import check_window
from engine.satisfaction import SATISFACTION_MEASURES, RatingCounts, satisfaction_records
from engine.store.reads import HistoryReads, StoredClock

# CSV and JSON Lines: one table of both sections, so a spreadsheet can filter and pivot
# it as it stands, and reports of several periods can be appended to one another.
FLAT_COLUMNS = (
    "period",
    "section",
    "department",
    "service",
    "function",
    "priority",
    "metric",
    "agreement",
    *MEASURES,
)
NAME_COLUMNS = ("department_name", "service_name", "function_name")
TOTAL_COLUMNS = ("department", "service", *TOTAL_MEASURES)
_DEFAULT_NOTE = (
    "agreement default: a service the department has not ordered, out of agreement,"
    " under the general contract's targets\n"
)


# Clocks made into outcomes between two turns of the event loop: about 10 ms of work.
_TURN_EVERY = 500


async def clock_outcomes(
    history: HistoryReads,
    start: datetime,
    end: datetime,
    now: datetime,
    department: str | None = None,
    function: str | None = None,
) -> list[ClockOutcome]:
    """The clocks of the tickets created in ``[start, end)``, as they stand at ``now``
    (only ``department``'s, or only ``function``'s OLA clocks, when given).

    Tickets whose ``ticket.created`` never arrived have no clocks and are not counted.
    """
    check_window(start, end)
    if now.utcoffset() is None:
        raise ValueError(f"now {now.isoformat()} has no UTC offset")
    outcomes = []
    # The same labels recur on every clock: one string each keeps a year's clocks small.
    labels: dict[str, str] = {}
    async with aclosing(history.clocks_of_period(start, end, department, function)) as clocks:
        async for clock in clocks:
            outcomes.append(_outcome(clock, now, labels))
            if len(outcomes) % _TURN_EVERY == 0:
                # The store hands over thousands of rows it fetched at once: let the
                # loop turn between them (the HTTP port's /healthz, intake).
                await asyncio.sleep(0)
    return outcomes


def _outcome(clock: StoredClock, now: datetime, labels: dict[str, str]) -> ClockOutcome:
    # Stored as last measured: a clock still running may have passed its deadline since.
    overdue = clock.running and clock.deadline is not None and clock.deadline <= now
    # A running clock's elapsed_s is as of that measurement too, possibly well before
    # ``now``; measuring it again would take the calendars, and this reads the store
    # alone. It counts in no median, so that does not matter. A clock's running flag is
    # current: only an event changes it, and every event measures the clock again.
    return ClockOutcome(
        ticket_id=clock.ticket_id,
        department=labels.setdefault(clock.department, clock.department),
        service=labels.setdefault(clock.service, clock.service),
        priority=labels.setdefault(clock.priority, clock.priority),
        metric=labels.setdefault(clock.metric, clock.metric),
        agreement=labels.setdefault(clock.agreement_kind, clock.agreement_kind),
        function=labels.setdefault(clock.function, clock.function),
        outcome=outcome_of(clock.state, overdue=overdue),
        running=clock.running,
        elapsed_s=clock.elapsed_s,
        target_s=clock.target_s,
    )


def render_report(
    outcomes: Iterable[ClockOutcome],
    fmt: Format,
    out: TextIO,
    *,
    period: str,
    satisfaction: Sequence[RatingCounts] | None = None,
    names: Names | None = None,
) -> None:
    """Print the SLA compliance and the OLA compliance per provider function in ``fmt``,
    and with ``satisfaction`` the requesters' satisfaction per department and service.

    table: a heading with the period over each section's table. json: one object,
    ``{"period", "sla", "ola"}`` (and ``"satisfaction"``). csv and jsonl: one table of
    every section, told apart by a ``section`` column (``sla``, ``ola``,
    ``satisfaction``, ``total``), with the period on every row.

    With ``names`` (the configuration's), totals per department and per service are
    added (over priorities and metrics), and the table shows names instead of ids; the
    machine formats keep the ids and add ``department_name``, ``service_name`` and
    ``function_name`` beside them: json a ``totals`` list, csv and jsonl rows of section
    ``total`` (a department's with the service empty).
    """
    clocks = list(outcomes)
    if fmt == "json":
        document = report_json(clocks, period, satisfaction=satisfaction, names=names)
        json.dump(document, out, ensure_ascii=False, indent=2)
        out.write("\n")
        return
    sla = sla_records(clocks)
    ola = ola_records(clocks)
    totals = _totals(clocks) if names is not None else []
    if fmt in ("csv", "jsonl"):
        flat = (
            [{"period": period, "section": "sla", **r} for r in sla]
            + [{"period": period, "section": "ola", "agreement": "ola", **r} for r in ola]
            + [{"period": period, "section": "total", **r} for r in totals]
        )
        columns: tuple[str, ...] = FLAT_COLUMNS
        if satisfaction is not None:
            flat += satisfaction_flat(satisfaction, period)
            columns = (*columns, *SATISFACTION_MEASURES)
        if names is not None:
            flat = [names.with_names(r) for r in flat]
            columns = (*columns, *NAME_COLUMNS)
        write(flat, columns, fmt, out)
    else:
        shown = names.named if names is not None else dict
        out.write(f"SLA compliance per department, service, priority and metric, {period}\n")
        write([shown(r) for r in sla], SLA_COLUMNS, fmt, out)
        if any(record["agreement"] == "default" for record in sla):
            out.write(_DEFAULT_NOTE)
        out.write(f"\nOLA compliance per provider function, {period}\n")
        write([shown(r) for r in ola], OLA_COLUMNS, fmt, out)
        if names is not None:
            out.write(
                f"\nTotals per department and service, over priorities and metrics, {period}\n"
            )
            write([shown(r) for r in totals], TOTAL_COLUMNS, fmt, out)
        if satisfaction is not None:
            write_satisfaction_table(satisfaction, out, period, shown)


def report_json(
    outcomes: Sequence[ClockOutcome],
    period: str,
    *,
    satisfaction: Sequence[RatingCounts] | None = None,
    names: Names | None = None,
) -> dict[str, Any]:
    """The report as ``report --format json`` prints it and the HTTP port's compliance
    endpoints answer: ``{"period", "sla", "ola"}``, with ``satisfaction`` its records,
    and with ``names`` the ids' names beside them and the ``totals``."""
    document: dict[str, Any] = {
        "period": period,
        "sla": [_only(record, SLA_COLUMNS) for record in sla_records(outcomes)],
        "ola": [_only(record, OLA_COLUMNS) for record in ola_records(outcomes)],
    }
    if satisfaction is not None:
        document["satisfaction"] = satisfaction_records(satisfaction)
    if names is not None:
        document = _named_document(document, _totals(outcomes), names)
    return document


def _totals(clocks: Sequence[ClockOutcome]) -> list[dict[str, Any]]:
    """Each department's total, then its services', in department order."""
    departments = total_records(clocks, ("department",))
    services = total_records(clocks, ("department", "service"))
    return [
        row
        for department in departments
        for row in (
            {"service": None, **department},
            *(s for s in services if s["department"] == department["department"]),
        )
    ]


def _named_document(
    document: dict[str, Any], totals: Sequence[Record], names: Names
) -> dict[str, Any]:
    return {
        **document,
        "sla": [names.with_names(r) for r in document["sla"]],
        "ola": [names.with_names(r) for r in document["ola"]],
        **(
            {"satisfaction": [names.with_names(r) for r in document["satisfaction"]]}
            if "satisfaction" in document
            else {}
        ),
        "totals": [names.with_names(_only(r, TOTAL_COLUMNS)) for r in totals],
    }


def _only(record: Record, columns: Sequence[str]) -> dict[str, Any]:
    return {column: record.get(column) for column in columns}
