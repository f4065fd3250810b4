"""Cross-checks between the files of ``config/``, run once each file is valid on its own."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime, timedelta

from engine.business_time import BusinessCalendar
from engine.config.agreement import AgreementConfig
from engine.config.durations import format_duration
from engine.config.models import CalendarEntry, Department, EscalationPolicy, Targets
from engine.config.problems import Origin, Problem
from engine.vocabulary import MEASURED_METRICS, PROVIDER_FUNCTIONS, AgreementKind, Metric, Tier

Located = dict[tuple[str, str], Origin]
"""Where each item was written: ``(section, id)`` -> origin; singletons have id ``""``.
Of an item in versions, the first version's."""
VersionOrigins = dict[tuple[str, str, datetime | None], Origin]
"""Where each version of a versioned item was written: ``(section, id, valid_from)``."""


def cross_check(
    config: AgreementConfig, items: Located, versions: VersionOrigins | None = None
) -> list[Problem]:
    """Every problem that only shows when the files are read together.

    The checks that involve versioned agreements (SLAs, the general contract, OLAs) run
    on the configuration as it stands from each instant a version comes into force, so
    every version is checked with each version of the others it overlaps: an OLA with
    every SLA in force while it is. A problem is told once, by the first span of time
    it shows in; one that only shows later says from when.
    """
    found: dict[Problem, None] = dict.fromkeys(
        [
            *(
                problem
                for policy in config.escalation_policies.values()
                for problem in _policy_steps(policy, items[("escalation_policies", policy.id)])
            ),
            *(
                problem
                for calendar in config.calendars.values()
                for problem in _calendar_open_time(calendar, items[("calendars", calendar.id)])
            ),
            *_provider(config, items[("provider", "")]),
        ]
    )
    told: set[tuple[str, int | None, str]] = set()  # where problems of earlier spans are
    for start in (None, *config.version_starts()):
        era = config.at(start)
        located = _located(era, items, versions or {})
        # A key told of in an earlier span is not told again (an OLA target looser than
        # more SLAs later on, say): once it is fixed, a check tells what remains.
        new = [p for p in _in_force(era, located) if (p.file, p.line, p.key) not in told]
        found.update((_since(problem, start), None) for problem in new)
        told.update((p.file, p.line, p.key) for p in new)
    return list(found)


def _since(problem: Problem, start: datetime | None) -> Problem:
    """``problem``, saying from when it shows when that is not the beginning of time."""
    if start is None:
        return problem
    when = f" (with the agreements in force from {start.isoformat()})"
    return Problem(problem.file, problem.key, problem.message + when, problem.line)


def _located(era: AgreementConfig, items: Located, versions: VersionOrigins) -> Located:
    """``items``, with each versioned item's origin the version in force in ``era``."""
    located = dict(items)
    for dep in era.departments.values():
        located[("departments", dep.id)] = versions.get(
            ("departments", dep.id, dep.valid_from), items[("departments", dep.id)]
        )
    for function, ola in era.olas.items():
        located[("olas", function)] = versions.get(
            ("olas", function, ola.valid_from), items[("olas", function)]
        )
    contract = era.general_contract
    located[("general_contract", "")] = versions.get(
        ("general_contract", "", contract.valid_from), items[("general_contract", "")]
    )
    return located


def _in_force(config: AgreementConfig, items: Located) -> list[Problem]:
    """The checks of the agreements in force at one time."""
    return [
        *_contract_references(config, items[("general_contract", "")]),
        *(
            problem
            for dep in config.departments.values()
            for problem in _department(config, dep, items[("departments", dep.id)], items)
        ),
        *_customer_teams_dedicated(config, items),
        *_olas(config, items),
        *_measured_targets(config, items),
    ]


def _known(kind: str, value: str, known: Collection[str]) -> str | None:
    if value in known:
        return None
    return f"unknown {kind} {value!r} (known: {', '.join(sorted(known))})"


def _contract_references(config: AgreementConfig, origin: Origin) -> Iterator[Problem]:
    contract = config.general_contract
    if message := _known("calendar", contract.default_calendar, config.calendars):
        yield origin.problem(message, "default_calendar")
    if message := _known(
        "escalation policy", contract.default_escalation_policy, config.escalation_policies
    ):
        yield origin.problem(message, "default_escalation_policy")
    first_index: dict[str, int] = {}
    for index, service_id in enumerate(contract.positive_list):
        if message := _known("service", service_id, config.services):
            yield origin.problem(message, "positive_list", index)
        if service_id in first_index:
            yield origin.problem(
                f"service {service_id!r} is listed twice, first at "
                f"{_where(origin, 'positive_list', first_index[service_id])}",
                "positive_list",
                index,
            )
        first_index.setdefault(service_id, index)


def _where(origin: Origin, *sub: str | int) -> str:
    """``file:line`` of a key inside an item, for a message that points at a second place."""
    return f"{origin.document.path}:{origin.document.line_of((*origin.loc, *sub))}"


def _provider(config: AgreementConfig, origin: Origin) -> Iterator[Problem]:
    first_index: dict[str, int] = {}
    for index, team in enumerate(config.provider.customer_teams):
        if team.id in first_index:
            yield origin.problem(
                f"duplicate id {team.id!r}, first defined at "
                f"{_where(origin, 'customer_teams', first_index[team.id], 'id')}",
                "customer_teams",
                index,
                "id",
            )
        first_index.setdefault(team.id, index)
    owned: dict[str, list[str]] = {}
    for service in config.services.values():
        owned.setdefault(service.function, []).append(service.id)
    for function, service_ids in owned.items():
        if function not in config.provider.functions:
            # Provider-side escalations of these services go to the function's lead.
            yield origin.problem(
                f"the provider names no lead for function {function!r}, so escalations of "
                f"its services ({', '.join(service_ids)}) reach nobody on the provider side",
                "functions",
            )


def _customer_teams_dedicated(config: AgreementConfig, items: Located) -> Iterator[Problem]:
    served: dict[str, Department] = {}
    for dep in config.departments.values():
        if dep.customer_team is None:
            continue
        first = served.setdefault(dep.customer_team, dep)
        if first is not dep:
            yield items[("departments", dep.id)].problem(
                f"customer team {dep.customer_team!r} already serves department {first.id!r} "
                f"({_where(items[('departments', first.id)], 'customer_team')}); "
                "a customer team is dedicated to one department",
                "customer_team",
            )


def _department(
    config: AgreementConfig, dep: Department, origin: Origin, items: Located
) -> Iterator[Problem]:
    if dep.calendar is not None and (message := _known("calendar", dep.calendar, config.calendars)):
        yield origin.problem(message, "calendar")
    if dep.escalation_policy is not None and (
        message := _known("escalation policy", dep.escalation_policy, config.escalation_policies)
    ):
        yield origin.problem(message, "escalation_policy")
    teams = {team.id: team for team in config.provider.customer_teams}
    if dep.customer_team is not None and (
        message := _known("customer team", dep.customer_team, teams)
    ):
        yield origin.problem(message, "customer_team")
    positive = config.general_contract.positive_list
    for service_id in dep.services:
        if message := _known("service", service_id, config.services):
            yield origin.problem(message, "services", service_id)
        elif service_id not in positive:
            yield origin.problem(
                f"service {service_id!r} is not on the general contract's positive list",
                "services",
                service_id,
            )
    for service_id in dep.contacts.system_owners:
        if service_id not in dep.services:
            yield origin.problem(
                f"system owner named for {service_id!r}, which the department has not ordered",
                "contacts",
                "system_owners",
                service_id,
            )
    yield from _audiences_reachable(config, dep, origin, items)


def _audiences_reachable(
    config: AgreementConfig, dep: Department, origin: Origin, items: Located
) -> Iterator[Problem]:
    """Every side a step of the department's policy tells reaches someone with a channel.

    (Every contact has a channel: the model refuses one without.) The department side is
    the tier's contact; the provider side always has the helpdesk lead while a ticket is
    unassigned and the IT chief at the strategic tier, but once a ticket is assigned it
    is the function's lead, or the department's customer team, and either may be missing.
    """
    policy_id = dep.escalation_policy or config.general_contract.default_escalation_policy
    policy = config.escalation_policies.get(policy_id)
    if policy is None:
        return  # reported as an unknown reference
    at = items[("escalation_policies", policy.id)]
    owners = dep.contacts.system_owners
    first_told: dict[Tier, int] = {}  # the first step that tells the department each tier
    for index, step in enumerate(policy.steps):
        if "department" in step.heard_by:
            first_told.setdefault(step.tier, index)
    for tier, index in first_told.items():
        if dep.contacts.for_tier(tier) is not None:
            continue
        if tier == "tactical" and all(service in owners for service in dep.services):
            continue  # every ordered service has a system owner to tell
        step = policy.steps[index]
        yield origin.problem(
            f"escalation policy {policy.id!r} tells the department side at the {tier} tier "
            f"(step {step.at:g}, {_where(at, 'steps', index)}), "
            f"but the department has no {tier} contact",
            "contacts",
        )
    provider_step = next(
        (
            index
            for index, step in enumerate(policy.steps)
            if "provider" in step.heard_by and step.tier != "strategic"
        ),
        None,
    )
    serving = next((t for t in config.provider.customer_teams if t.id == dep.customer_team), None)
    if provider_step is None or (serving is not None and serving.contact is not None):
        return
    unled = [f for f in PROVIDER_FUNCTIONS if f not in config.provider.functions]
    if unled:
        step = policy.steps[provider_step]
        team = (
            "has no customer team"
            if serving is None
            else f"customer team {serving.id!r} has no contact"
        )
        yield origin.problem(
            f"escalation policy {policy.id!r} tells the provider side "
            f"(step {step.at:g}, {_where(at, 'steps', provider_step)}), but a ticket "
            f"assigned to {', '.join(unled)} reaches nobody there: the provider names no "
            f"lead for it, and the department {team}",
            "customer_team",
        )


def _policy_steps(policy: EscalationPolicy, origin: Origin) -> Iterator[Problem]:
    for index in range(1, len(policy.steps)):
        before, step = policy.steps[index - 1].at, policy.steps[index].at
        if step <= before:
            yield origin.problem(
                f"steps must increase: {step:g} follows {before:g}", "steps", index, "at"
            )
    if not any(step.at == 1.0 for step in policy.steps):
        yield origin.problem("no step at 1.0: the breach itself must escalate", "steps")


def _calendar_open_time(calendar: CalendarEntry, origin: Origin) -> Iterator[Problem]:
    if not calendar.has_week_hours():
        yield origin.problem(
            "the calendar has no open time in any year: every weekday is closed", "week"
        )
        return
    # Weekly windows recur every year; only extra closure days can empty a whole year.
    business = BusinessCalendar(calendar)
    for year in sorted({day.year for day in calendar.holidays.dates}):
        if business.open_time_in_year(year) == timedelta(0):
            yield origin.problem(f"the calendar has no open time in {year}", "holidays", "dates")


def _olas(config: AgreementConfig, items: Located) -> Iterator[Problem]:
    for function, ola in config.olas.items():
        origin = items[("olas", function)]
        if function not in config.provider.functions:
            yield origin.problem(
                f"the provider names no lead for function {function!r}, "
                "so escalations of this OLA reach nobody",
                "function",
            )
        for priority, per_metric in ola.targets.items():
            for metric, ola_target in per_metric.items():
                if metric not in MEASURED_METRICS["ola"]:
                    continue  # refused as a target no clock measures
                looser = [
                    (sla_target, dep.id, service_id)
                    for dep in config.departments.values()
                    for service_id in dep.services
                    if (service := config.services.get(service_id)) is not None
                    and service.function == function
                    and (
                        sla_target := config.targets_for(dep.id, service_id)[1]
                        .get(priority, {})
                        .get(metric)
                    )
                    is not None
                    and ola_target > sla_target
                ]
                if looser:
                    strictest, dep_id, service_id = min(looser)
                    others = f" and {len(looser) - 1} more" if len(looser) > 1 else ""
                    yield origin.problem(
                        f"OLA target {format_duration(ola_target)} is looser than the SLA target "
                        f"{format_duration(strictest)} it underpins (department {dep_id!r}, "
                        f"service {service_id!r}){others}; an OLA must at least meet the SLA",
                        "targets",
                        priority,
                        metric,
                    )


# Whose clocks a target is measured by, as a problem names them.
_CLOCKS_OF: dict[AgreementKind, str] = {
    "sla": "SLA clocks",
    "default": "clocks under the general contract's defaults",
    "ola": "OLA clocks",
}


def _measured_targets(config: AgreementConfig, items: Located) -> Iterator[Problem]:
    """Targets of a metric that no clock of their agreement measures (MEASURED_METRICS).

    Such a target would be accepted and never met nor breached: the department would
    think it promised, and nobody would hear that it is not kept.
    """
    # The contract's defaults are the targets of services not ordered and fill in the
    # targets a department's SLA leaves out: both kinds of clock must measure them.
    yield from _unmeasured(
        config.general_contract.default_targets,
        ("default", "sla"),
        items[("general_contract", "")],
        "default_targets",
    )
    for dep in config.departments.values():
        origin = items[("departments", dep.id)]
        for service_id, ordered in dep.services.items():
            yield from _unmeasured(
                ordered.targets, ("sla",), origin, "services", service_id, "targets"
            )
    for function, ola in config.olas.items():
        yield from _unmeasured(ola.targets, ("ola",), items[("olas", function)], "targets")


def _unmeasured(
    targets: Targets, kinds: tuple[AgreementKind, ...], origin: Origin, *at: str
) -> Iterator[Problem]:
    for priority, per_metric in targets.items():
        for metric in per_metric:
            unmeasured_by = next((k for k in kinds if metric not in MEASURED_METRICS[k]), None)
            if unmeasured_by is not None:
                yield origin.problem(
                    _unmeasured_message(metric, unmeasured_by), *at, priority, metric
                )


def _unmeasured_message(metric: Metric, kind: AgreementKind) -> str:
    measured: list[str] = sorted(MEASURED_METRICS[kind])
    *others, last = measured or ["nothing"]
    listed = f"{', '.join(others)} and {last}" if others else last
    return (
        f"{_CLOCKS_OF[kind]} measure {listed}, not {metric!r}: no clock would ever meet or "
        "breach this target; remove it"
    )
