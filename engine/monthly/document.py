"""What a department's monthly report holds: worded sections, and the rows of its CSV. Pure.

The figures are ``engine.reporting.compliance``'s, counted as ``sla-engine report`` and
``simulate`` count them; this module only chooses, orders and words them. Every section
is a ``TableSection``, so a new kind of figure plugs in as one more: satisfaction (the
ratings per service) is such a section, given through ``MonthlyInputs.extra_sections``
and placed between the trend and the price, its CSV rows beside the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from statistics import fmean
from typing import Any

from engine.config import AgreementConfig
from engine.monthly.period import Month
from engine.monthly.words import duration_words, month_words, percent_words, points_words, words
from engine.reporting.compliance import (
    MEASURES,
    ClockOutcome,
    ola_records,
    sla_records,
    total_records,
)
from engine.reporting.names import Names
from engine.sheet.words import Language, date_words, list_words, price_words

MAX_BREACH_ROWS = 200
"""Breaches listed in the HTML; the CSV lists every one."""
_METRIC_ORDER = {"response": 0, "resolution": 1, "update": 2}
# The columns of a compliance table after its first (the service, or the function).
_MEASURED = (
    "priority",
    "metric",
    "tickets",
    "met",
    "breached",
    "open",
    "compliance",
    "median",
    "p90",
    "target",
)
MONTHLY_COLUMNS = (
    "section",
    "month",
    "department",
    "department_name",
    "service",
    "service_name",
    "function",
    "function_name",
    "priority",
    "metric",
    "agreement",
    "ticket_id",
    *MEASURES,
    "elapsed_s",
    "price_dkk",
    "amount_dkk",
)
"""The CSV's columns, one table of every section, told apart by ``section``; a section
plugged in may add columns of its own after these."""

Row = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TableSection:
    """A section: heading, introduction, and a table with caption, or a line when empty."""

    key: str  # the HTML anchor, and the CSV's section of its records
    heading: str
    intro: str
    caption: str
    columns: tuple[str, ...]
    numeric: tuple[bool, ...]  # per column: a figure, right-aligned
    rows: tuple[Row, ...]
    footer: tuple[Row, ...] = ()  # totals
    empty: str = ""  # said instead of the table when it has no rows
    note: str = ""  # said below the table
    records: tuple[dict[str, Any], ...] = ()  # its rows in the CSV


ServiceScope = frozenset[str] | None
"""The services a report is about: a system owner's, or None for the whole department."""
ExtraSections = Callable[[Language, ServiceScope], Sequence[TableSection]]
"""Sections made elsewhere (satisfaction), in a language, for a scope."""


@dataclass(frozen=True)
class MonthlyInputs:
    """What a department's report is made from: its clocks in the month and the months of
    the trend (``Month.trend``), as they stood at ``made_at``."""

    config: AgreementConfig
    department_id: str
    month: Month
    outcomes: Mapping[Month, Sequence[ClockOutcome]]
    made_at: datetime
    extra_sections: ExtraSections | None = None


@dataclass(frozen=True)
class MonthlyDocument:
    """A department's report for a month, worded in one language, for one scope."""

    language: Language
    department_id: str
    department_name: str
    month: Month
    title: str
    subject: str
    lead: str
    scope_note: str
    facts: tuple[tuple[str, str], ...]
    sections: tuple[TableSection, ...]
    csv_name: str
    records: tuple[dict[str, Any], ...] = field(default=())


def monthly_document(
    inputs: MonthlyInputs, language: Language, services: ServiceScope = None
) -> MonthlyDocument:
    """The report of ``inputs`` in ``language``, about ``services`` (None: all of them)."""
    config, month = inputs.config, inputs.month
    department = config.departments[inputs.department_id]
    names = Names(config)
    w = words(language)
    zone = config.calendar_for(department.id).zone
    month_text = month_words(month, language)

    def scoped(clocks: Iterable[ClockOutcome]) -> list[ClockOutcome]:
        return [c for c in clocks if services is None or c.service in services]

    this = scoped(inputs.outcomes.get(month, ()))
    ordered = [s for s in department.services if services is None or s in services]
    seen = {c.service for m in month.trend() for c in scoped(inputs.outcomes.get(m, ()))}
    others = sorted(seen - set(ordered), key=names.service)
    order = {service: i for i, service in enumerate([*ordered, *others])}

    def label(service: str) -> str:
        name = names.service(service)
        return (
            name if service in department.services else w["out_of_agreement"].format(service=name)
        )

    context = _Context(config, names, language, month, month_text, order, label)
    total = _department_total(this)
    extra = inputs.extra_sections(language, services) if inputs.extra_sections else ()
    priced = _price(context, ordered, others, this)
    sections = (
        _compliance(context, this),
        _totals(context, ordered, this, department.name),
        _breaches(context, this),
        _ola(context, ordered, this),
        _trend(context, inputs.outcomes, scoped, department.name),
        *extra,
        priced,
    )
    breached = [c for c in this if c.agreement != "ola" and c.outcome == "breached"]
    facts = [
        (w["fact_tickets"], str(len({c.ticket_id for c in this}))),
        (w["fact_compliance"], percent_words(total["compliance_pct"], language)),
        (
            w["fact_breaches"],
            w["fact_breaches_value"].format(
                clocks=len(breached), tickets=len({c.ticket_id for c in breached})
            ),
        ),
    ]
    if priced.footer:
        facts.append((w["fact_amount"], priced.footer[0][-1]))
    last_day = month.end(zone).date().toordinal() - 1
    lead = w["lead"].format(
        provider=config.provider.name,
        department=department.name,
        first=date_words(month.first_day, language),
        last=date_words(month.first_day.fromordinal(last_day), language),
        made=inputs.made_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
    )
    scope_note = (
        ""
        if services is None
        else w["scope_owner"].format(services=list_words([label(s) for s in ordered], language))
    )
    records = tuple(
        {"month": str(month), **names.with_names({"department": department.id, **r})}
        | ({"section": s.key} if "section" not in r else {})
        for s in sections
        for r in s.records
    )
    return MonthlyDocument(
        language=language,
        department_id=department.id,
        department_name=department.name,
        month=month,
        title=w["title"].format(department=department.name, month=month_text),
        subject=w["subject"].format(department=department.name, month=month_text),
        lead=lead,
        scope_note=scope_note,
        facts=tuple(facts),
        sections=sections,
        csv_name=f"sla-{department.id}-{month}.csv",
        records=records,
    )


@dataclass(frozen=True)
class _Context:
    config: AgreementConfig
    names: Names
    language: Language
    month: Month
    month_text: str
    order: Mapping[str, int]
    label: Callable[[str], str]

    @property
    def w(self) -> Mapping[str, Any]:
        return words(self.language)

    def service_key(self, service: str) -> tuple[int, str]:
        return (self.order.get(service, len(self.order)), service)


def _department_total(clocks: Sequence[ClockOutcome]) -> dict[str, Any]:
    totals = total_records(clocks, ("department",))
    if totals:
        return totals[0]
    return {"tickets": 0, "met": 0, "breached": 0, "open": 0, "compliance_pct": None}


def _count_cells(record: Mapping[str, Any], language: Language) -> Row:
    return (
        str(record["tickets"]),
        str(record["met"]),
        str(record["breached"]),
        str(record["open"]),
        percent_words(record["compliance_pct"], language),
    )


def _compliance(ctx: _Context, clocks: Sequence[ClockOutcome]) -> TableSection:
    w, language = ctx.w, ctx.language
    records = sorted(
        sla_records(clocks),
        key=lambda r: (ctx.service_key(r["service"]), r["priority"], _METRIC_ORDER[r["metric"]]),
    )
    rows = tuple(
        (
            ctx.label(r["service"]),
            r["priority"],
            w["metrics"][r["metric"]],
            *_count_cells(r, language),
            duration_words(r["median_s"], language),
            duration_words(r["p90_s"], language),
            duration_words(r["target_s"], language),
            percent_words(r["median_of_target_pct"], language),
        )
        for r in records
    )
    return TableSection(
        key="sla",
        heading=w["compliance_heading"],
        intro=w["compliance_intro"],
        caption=w["compliance_caption"].format(month=ctx.month_text),
        columns=tuple(w[f"col_{c}"] for c in ("service", *_MEASURED, "median_of_target")),
        numeric=(False, False, False, *(True,) * 9),
        rows=rows,
        empty=w["no_tickets"],
        records=tuple({"section": "sla", **r} for r in records),
    )


def _totals(
    ctx: _Context, ordered: Sequence[str], clocks: Sequence[ClockOutcome], department_name: str
) -> TableSection:
    w, language = ctx.w, ctx.language
    per_service = {r["service"]: r for r in total_records(clocks, ("service",))}
    zero = {"tickets": 0, "met": 0, "breached": 0, "open": 0, "compliance_pct": None}
    services = sorted({*ordered, *per_service}, key=ctx.service_key)
    total = _department_total(clocks)
    records = [{"section": "total", "service": s, **per_service.get(s, zero)} for s in services]
    records.append({"section": "total", **total})
    return TableSection(
        key="totals",
        heading=w["totals_heading"],
        intro=w["totals_intro"],
        caption=w["totals_caption"].format(month=ctx.month_text),
        columns=tuple(
            w[f"col_{c}"] for c in ("service", "tickets", "met", "breached", "open", "compliance")
        ),
        numeric=(False, *(True,) * 5),
        rows=tuple(
            (ctx.label(s), *_count_cells(per_service.get(s, zero), language)) for s in services
        ),
        footer=(
            (w["total_row"].format(department=department_name), *_count_cells(total, language)),
        ),
        records=tuple(records),
    )


def _breaches(ctx: _Context, clocks: Sequence[ClockOutcome]) -> TableSection:
    w, language = ctx.w, ctx.language
    breached = sorted(
        (c for c in clocks if c.agreement != "ola" and c.outcome == "breached"),
        key=lambda c: (ctx.service_key(c.service), c.ticket_id, _METRIC_ORDER[c.metric]),
    )
    rows = tuple(
        (
            c.ticket_id,
            ctx.label(c.service),
            c.priority,
            w["metrics"][c.metric],
            w["still_running"] if c.running else duration_words(c.elapsed_s, language),
            duration_words(c.target_s, language),
        )
        for c in breached[:MAX_BREACH_ROWS]
    )
    more = len(breached) - len(rows)
    return TableSection(
        key="breaches",
        heading=w["breaches_heading"],
        intro=w["breaches_intro"],
        caption=w["breaches_caption"].format(month=ctx.month_text),
        columns=tuple(
            w[f"col_{c}"] for c in ("ticket", "service", "priority", "metric", "used", "target")
        ),
        numeric=(False, False, False, False, True, True),
        rows=rows,
        empty=w["breaches_none"],
        note=w["breaches_more"].format(n=more) if more > 0 else "",
        records=tuple(
            {
                "section": "breach",
                "ticket_id": c.ticket_id,
                "service": c.service,
                "priority": c.priority,
                "metric": c.metric,
                "agreement": c.agreement,
                "elapsed_s": None if c.running else round(c.elapsed_s, 1),
                "target_s": round(c.target_s, 1),
            }
            for c in breached
        ),
    )


def _ola(ctx: _Context, ordered: Sequence[str], clocks: Sequence[ClockOutcome]) -> TableSection:
    w, language = ctx.w, ctx.language
    records = sorted(
        ola_records(clocks),
        key=lambda r: (ctx.names.function(r["function"]), r["priority"], r["metric"]),
    )
    serving = {ctx.config.services[s].function for s in ordered if s in ctx.config.services}
    serving |= {r["function"] for r in records}
    functions = list_words(sorted(ctx.names.function(f) for f in serving), language)
    return TableSection(
        key="ola",
        heading=w["ola_heading"],
        intro=w["ola_intro"].format(functions=functions),
        caption=w["ola_caption"].format(month=ctx.month_text),
        columns=tuple(w[f"col_{c}"] for c in ("function", *_MEASURED)),
        numeric=(False, False, False, *(True,) * 8),
        rows=tuple(
            (
                ctx.names.function(r["function"]),
                r["priority"],
                w["metrics"][r["metric"]],
                *_count_cells(r, language),
                duration_words(r["median_s"], language),
                duration_words(r["p90_s"], language),
                duration_words(r["target_s"], language),
            )
            for r in records
        ),
        empty=w["ola_none"],
        records=tuple({"section": "ola", "agreement": "ola", **r} for r in records),
    )


def _trend(
    ctx: _Context,
    outcomes: Mapping[Month, Sequence[ClockOutcome]],
    scoped: Callable[[Iterable[ClockOutcome]], list[ClockOutcome]],
    department_name: str,
) -> TableSection:
    w, language = ctx.w, ctx.language
    months = ctx.month.trend()
    per_month = {m: scoped(outcomes.get(m, ())) for m in months}
    by_service = {
        m: {r["service"]: r for r in total_records(per_month[m], ("service",))} for m in months
    }
    totals = {m: _department_total(per_month[m]) for m in months}
    services = sorted(ctx.order, key=ctx.service_key)

    def row(head: str, figures: Sequence[Mapping[str, Any] | None]) -> Row:
        pcts = [None if f is None else f["compliance_pct"] for f in figures]
        before = [p for p in pcts[:-1] if p is not None]
        change = pcts[-1] - fmean(before) if pcts[-1] is not None and before else None
        return (
            head,
            *(percent_words(p, language) for p in pcts),
            points_words(change, language),
        )

    records = [
        {"section": "trend", "month": str(m), "service": s, **by_service[m][s]}
        for s in services
        for m in months
        if s in by_service[m]
    ] + [{"section": "trend", "month": str(m), **totals[m]} for m in months]
    return TableSection(
        key="trend",
        heading=w["trend_heading"],
        intro=w["trend_intro"],
        caption=w["trend_caption"].format(
            first=month_words(months[0], language), last=ctx.month_text
        ),
        columns=(
            w["col_service"],
            *(month_words(m, language) for m in months),
            w["col_change"],
        ),
        numeric=(False, *(True,) * (len(months) + 1)),
        rows=tuple(row(ctx.label(s), [by_service[m].get(s) for m in months]) for s in services),
        footer=(
            row(w["total_row"].format(department=department_name), [totals[m] for m in months]),
        ),
        records=tuple(records),
    )


def _price(
    ctx: _Context, ordered: Sequence[str], others: Sequence[str], clocks: Sequence[ClockOutcome]
) -> TableSection:
    w, language = ctx.w, ctx.language
    tickets: dict[str, set[str]] = {}
    for clock in clocks:
        if clock.agreement != "ola":
            tickets.setdefault(clock.service, set()).add(clock.ticket_id)
    services = [
        s
        for s in [*ordered, *(o for o in others if o in tickets)]
        if s in ctx.config.services and ctx.config.services[s].price_dkk is not None
    ]
    lines: list[tuple[str, int, Decimal, Decimal]] = []
    for service in services:
        price = ctx.config.services[service].price_dkk
        assert price is not None  # chosen for having one
        count = len(tickets.get(service, ()))
        lines.append((service, count, price, price * count))
    total = sum((amount for *_, amount in lines), Decimal(0))
    return TableSection(
        key="price",
        heading=w["price_heading"],
        intro=w["price_intro"],
        caption=w["price_caption"].format(month=ctx.month_text),
        columns=tuple(w[f"col_{c}"] for c in ("service", "tickets", "price", "amount")),
        numeric=(False, True, True, True),
        rows=tuple(
            (ctx.label(s), str(n), price_words(p, language), price_words(a, language))
            for s, n, p, a in lines
        ),
        footer=(
            (
                (
                    w["price_total"],
                    str(sum(n for _, n, _, _ in lines)),
                    "",
                    price_words(total, language),
                ),
            )
            if lines
            else ()
        ),
        empty=w["price_none"],
        records=tuple(
            {
                "section": "price",
                "service": s,
                "tickets": n,
                "price_dkk": str(p),
                "amount_dkk": str(a),
            }
            for s, n, p, a in lines
        ),
    )
