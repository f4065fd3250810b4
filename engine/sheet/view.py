"""What a sheet shows, worded: the configuration read into plain sentences and table cells.

Everything here is text the templates lay out as it is; the templates hold no rules of
the agreement, only where each piece goes. Pure: configuration in, words out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

import holidays

from engine.business_time.windows import WEEKDAYS, Weekday, Window
from engine.config import AgreementConfig
from engine.config.models import (
    CalendarEntry,
    CustomerTeam,
    Department,
    EscalationStep,
    Targets,
)
from engine.escalation.recipients import department_side, provider_side
from engine.sheet.words import (
    Basis,
    Language,
    date_words,
    duration_words,
    list_words,
    percent_words,
    price_words,
    target_sentence,
    windows_words,
    words,
)
from engine.vocabulary import LEVELS, PRIORITIES, TIERS, Metric, ProviderFunction

Href = Callable[[str | None], str]
"""The link to a department's page (its id), or to the index (None)."""

_METRICS: tuple[Metric, ...] = ("response", "resolution", "update")
_WHOLE_DAY = Window(0, 24 * 60)
# The holidays package names its languages by locale; the sheet's are plain codes.
_HOLIDAY_LOCALES: Mapping[Language, tuple[str, ...]] = {"da": ("da",), "en": ("en_US", "en_GB")}


@dataclass(frozen=True)
class TargetRow:
    priority: str
    values: tuple[str, ...]  # one per column of the table's metrics
    own: str  # the metrics the department agreed itself, or the contract's
    sentence: str


@dataclass(frozen=True)
class TargetTable:
    caption: str
    metrics: tuple[str, ...]
    rows: tuple[TargetRow, ...]
    agreed: bool  # whether a department's own targets stand beside the contract's


@dataclass(frozen=True)
class ServiceView:
    id: str
    name: str
    description: str | None
    owner: str
    price: str
    batch: bool
    targets: TargetTable


@dataclass(frozen=True)
class DayRow:
    weekday: str
    hours: str


@dataclass(frozen=True)
class CalendarView:
    name: str
    timezone: str
    week: tuple[DayRow, ...]
    has_holidays: bool
    holiday_year: int
    holidays: tuple[tuple[str, str], ...]  # (date in words, the holiday's name)
    closure_days: tuple[str, ...]
    open_days: tuple[str, ...]
    batch_week: tuple[DayRow, ...]  # empty: no batch windows
    batch_services: tuple[str, ...]
    batch_on_closed_days: bool


@dataclass(frozen=True)
class StepView:
    when: str
    what: str
    tier: str
    who: tuple[str, ...]


@dataclass(frozen=True)
class ContactRow:
    role: str
    name: str
    email: str | None


@dataclass(frozen=True)
class PriceRow:
    service: str
    price: str
    has_price: bool


@dataclass(frozen=True)
class DepartmentSheet:
    """One department's page."""

    language: Language
    id: str
    name: str
    title: str
    provider: str
    index_href: str
    services: tuple[ServiceView, ...]
    calendar: CalendarView
    policy: str
    steps: tuple[StepView, ...]
    contacts: tuple[ContactRow, ...]
    has_customer_team: bool
    matrix_columns: tuple[str, ...]
    matrix_rows: tuple[tuple[str, tuple[str, ...]], ...]
    defaults: TargetTable
    prices: tuple[PriceRow, ...]
    version_since: str | None = None  # from when the version shown applies, if not always
    version_next: str | None = None  # when the next version applies, if one is coming


@dataclass(frozen=True)
class DepartmentRow:
    name: str
    href: str
    calendar: str
    ordered: int
    customer_team: str


@dataclass(frozen=True)
class CatalogRow:
    id: str
    name: str
    owner: str
    price: str
    positive: str
    description: str


@dataclass(frozen=True)
class IndexSheet:
    """The index page: the departments and the service catalog."""

    language: Language
    title: str
    provider: str
    departments: tuple[DepartmentRow, ...]
    catalog: tuple[CatalogRow, ...]


def department_sheet(
    config: AgreementConfig,
    department_id: str,
    language: Language,
    year: int,
    href: Href,
    at: datetime | None = None,
) -> DepartmentSheet:
    """Word one department's agreement in the version in force at ``at`` (None: the
    first version); ``year`` chooses which holidays are listed."""
    w = words(language)
    versioned = config
    config = config.at(at)
    department = config.departments[department_id]
    calendar = config.calendar_for(department_id)
    default_basis: Basis = "always" if _round_the_clock(calendar) else "open"
    services = tuple(
        _service(config, department, service_id, calendar, language)
        for service_id in department.services
    )
    defaults = _target_table(
        w["defaults_caption"],
        config.general_contract.default_targets,
        None,
        default_basis,
        language,
    )
    return DepartmentSheet(
        language=language,
        id=department.id,
        name=department.name,
        title=w["sheet_title"].format(department=department.name),
        provider=config.provider.name,
        index_href=href(None),
        services=services,
        calendar=_calendar(config, department, calendar, year, language),
        policy=_policy_name(config, department_id),
        steps=_steps(config, department, language),
        contacts=_contacts(config, department, language),
        has_customer_team=_customer_team(config, department) is not None,
        matrix_columns=tuple(w["urgency_col"].format(level=w["levels"][u]) for u in LEVELS),
        matrix_rows=tuple(
            (
                w["impact_row"].format(level=w["levels"][i]),
                tuple(config.general_contract.priority_matrix[i][u] for u in LEVELS),
            )
            for i in LEVELS
        ),
        defaults=defaults,
        prices=tuple(
            PriceRow(s.name, s.price, config.services[s.id].price_dkk is not None) for s in services
        ),
        **_versions(versioned, config, department, calendar, language, at),
    )


def _versions(
    versioned: AgreementConfig,
    config: AgreementConfig,
    department: Department,
    calendar: CalendarEntry,
    language: Language,
    at: datetime | None,
) -> dict[str, str | None]:
    """When the version shown came into force and when the next one does, in words."""
    w = words(language)
    starts = [s for s in (department.valid_from, config.general_contract.valid_from) if s]
    coming = versioned.next_version(department.id, at)

    def when(instant: datetime) -> str:
        return date_words(instant.astimezone(calendar.zone).date(), language)

    return {
        "version_since": w["version_since"].format(date=when(max(starts))) if starts else None,
        "version_next": w["version_next"].format(date=when(coming)) if coming else None,
    }


def index_sheet(config: AgreementConfig, language: Language, href: Href) -> IndexSheet:
    """Word the index: every department, and the catalog with its positive list."""
    w = words(language)
    positive = set(config.general_contract.positive_list)
    teams = {team.id: team.name for team in config.provider.customer_teams}
    return IndexSheet(
        language=language,
        title=w["index_title"].format(provider=config.provider.name),
        provider=config.provider.name,
        departments=tuple(
            DepartmentRow(
                name=department.name,
                href=href(department.id),
                calendar=_calendar_name(config.calendar_for(department.id)),
                ordered=len(department.services),
                customer_team=teams.get(department.customer_team or "", w["none"]),
            )
            for department in sorted(config.departments.values(), key=lambda d: d.name)
        ),
        catalog=tuple(
            CatalogRow(
                id=service.id,
                name=service.name,
                owner=_owner(config, service.function),
                price=price_words(service.price_dkk, language)
                if service.price_dkk is not None
                else w["none"],
                positive=w["yes"] if service.id in positive else w["no"],
                description=service.description or "",
            )
            for service in config.services.values()
        ),
    )


def _round_the_clock(calendar: CalendarEntry) -> bool:
    """Open every minute of the year: no weekday short of a whole day, no closed days."""
    spec = calendar.holidays
    always_open = all(calendar.week.get(day) == (_WHOLE_DAY,) for day in WEEKDAYS)
    return always_open and spec.country is None and not spec.dates


def _basis(calendar: CalendarEntry, batch: bool) -> Basis:
    if _round_the_clock(calendar):
        return "always"
    return "open_batch" if batch and calendar.batch_windows else "open"


def _owner(config: AgreementConfig, function: ProviderFunction) -> str:
    team = config.provider.functions.get(function)
    return team.name if team is not None else function


def _service(
    config: AgreementConfig,
    department: Department,
    service_id: str,
    calendar: CalendarEntry,
    language: Language,
) -> ServiceView:
    w = words(language)
    service = config.services[service_id]
    _, merged = config.targets_for(department.id, service_id)
    own = department.services[service_id].targets
    caption = w["targets_caption"].format(service=service.name)
    return ServiceView(
        id=service.id,
        name=service.name,
        description=service.description,
        owner=_owner(config, service.function),
        price=price_words(service.price_dkk, language)
        if service.price_dkk is not None
        else w["no_price"],
        batch=service.batch,
        targets=_target_table(caption, merged, own, _basis(calendar, service.batch), language),
    )


def _target_table(
    caption: str, targets: Targets, own: Targets | None, basis: Basis, language: Language
) -> TargetTable:
    """Targets per priority and metric; ``own``: the department's part of them, if any."""
    w = words(language)
    metrics = tuple(m for m in _METRICS if any(m in per_metric for per_metric in targets.values()))
    rows = []
    for priority in PRIORITIES:
        per_metric = targets.get(priority, {})
        if not per_metric:
            continue
        agreed = [w["metrics"][m].lower() for m in _METRICS if m in (own or {}).get(priority, {})]
        rows.append(
            TargetRow(
                priority=priority,
                values=tuple(
                    duration_words(per_metric[m], language) if m in per_metric else w["none"]
                    for m in metrics
                ),
                own=list_words(agreed, language) if agreed else w["own_targets_none"],
                sentence=target_sentence(per_metric, basis, language),
            )
        )
    return TargetTable(
        caption, tuple(w["metrics"][m] for m in metrics), tuple(rows), agreed=own is not None
    )


def _calendar_name(calendar: CalendarEntry) -> str:
    return calendar.name or calendar.id


def _week(windows: Mapping[Weekday, tuple[Window, ...]], language: Language) -> tuple[DayRow, ...]:
    w = words(language)
    return tuple(
        DayRow(w["weekdays"][day], windows_words(windows.get(day, ()), language))
        for day in WEEKDAYS
    )


def _calendar(
    config: AgreementConfig,
    department: Department,
    calendar: CalendarEntry,
    year: int,
    language: Language,
) -> CalendarView:
    spec = calendar.holidays
    kept_open = set(spec.open_dates)
    batch_services = tuple(
        config.services[service_id].name
        for service_id in department.services
        if config.services[service_id].batch
    )
    return CalendarView(
        name=_calendar_name(calendar),
        timezone=calendar.timezone,
        week=_week(calendar.week, language),
        has_holidays=spec.country is not None,
        holiday_year=year,
        holidays=tuple(
            (date_words(day, language), name)
            for day, name in _public_holidays(calendar, year, language)
            if day not in kept_open
        ),
        closure_days=tuple(date_words(day, language) for day in sorted(spec.dates)),
        open_days=tuple(date_words(day, language) for day in sorted(kept_open)),
        batch_week=_week(calendar.batch_windows, language) if calendar.batch_windows else (),
        batch_services=batch_services,
        batch_on_closed_days=calendar.batch_on_closed_days,
    )


def _public_holidays(
    calendar: CalendarEntry, year: int, language: Language
) -> list[tuple[date, str]]:
    spec = calendar.holidays
    if spec.country is None:
        return []
    supported = holidays.country_holidays(spec.country).supported_languages
    locale = next((code for code in _HOLIDAY_LOCALES[language] if code in supported), None)
    found = holidays.country_holidays(
        spec.country,
        subdiv=spec.subdivision,
        categories=spec.categories,
        years=year,
        language=locale,
    )
    return sorted(found.items())


def _policy_name(config: AgreementConfig, department_id: str) -> str:
    policy = config.policy_for(department_id)
    return policy.name or policy.id


def _steps(
    config: AgreementConfig, department: Department, language: Language
) -> tuple[StepView, ...]:
    w = words(language)
    policy = config.policy_for(department.id)
    steps = []
    for step in policy.steps:
        kind = "warning" if step.at < 1 else "breach" if step.at == 1 else "escalated"
        steps.append(
            StepView(
                when=w["step_at"].format(pct=percent_words(step.at, language)),
                what=w["step_kinds"][kind],
                tier=w["tiers"][step.tier],
                who=_told(config, department, step, language),
            )
        )
    return tuple(steps)


def _told(
    config: AgreementConfig, department: Department, step: EscalationStep, language: Language
) -> tuple[str, ...]:
    """Who hears of a step, asked of the notices' own rules (``engine.escalation``).

    The provider side depends on where the ticket is when the step fires, so it is told
    as the rule: whoever has the ticket (the helpdesk lead while it is unassigned), then
    those who hear whatever the assignment. The department side is grouped by service:
    the contacts common to most services first, then a system owner for their own.
    """
    w = words(language)
    heard = step.heard_by
    lines: list[str] = []
    if "provider" in heard:
        helpdesk = config.provider.helpdesk_lead
        lines.append(w["who_holder"].format(helpdesk=helpdesk.name))
        unassigned = provider_side(
            config,
            department=department.id,
            tier=step.tier,
            assigned_function=None,
            assigned_team=None,
        )
        lines.extend(contact.name for contact in unassigned if contact != helpdesk)
    if "department" not in heard:
        return tuple(lines)
    groups: dict[tuple[str, ...], list[str]] = {}
    for service_id in department.services:
        contacts = department_side(
            config, department=department.id, service=service_id, tier=step.tier
        )
        groups.setdefault(tuple(c.name for c in contacts), []).append(
            config.services[service_id].name
        )
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))  # stable: first seen wins
    for rank, (names, services) in enumerate(ordered):
        who = "; ".join(names) if names else w["nobody"]
        if rank == 0:
            lines.append(who)
        else:
            qualifier = w["for_services"].format(services=list_words(services, language))
            lines.append(f"{who} ({qualifier})")
    return tuple(lines)


def _customer_team(config: AgreementConfig, department: Department) -> CustomerTeam | None:
    return next(
        (t for t in config.provider.customer_teams if t.id == department.customer_team), None
    )


def _contacts(
    config: AgreementConfig, department: Department, language: Language
) -> tuple[ContactRow, ...]:
    w = words(language)
    contacts = department.contacts
    rows = [
        ContactRow(w[f"role_{tier}"], contact.name, contact.email)
        for tier in reversed(TIERS)
        if (contact := contacts.for_tier(tier)) is not None
    ]
    for service_id, owner in contacts.system_owners.items():
        service = config.services.get(service_id)
        name = service.name if service is not None else service_id
        rows.append(
            ContactRow(w["role_system_owner"].format(service=name), owner.name, owner.email)
        )
    team = _customer_team(config, department)
    if team is not None:
        email = team.contact.email if team.contact is not None else None
        rows.append(ContactRow(w["role_customer_team"], team.name, email))
    return tuple(rows)
