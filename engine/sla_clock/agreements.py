"""Agreement snapshots: the terms a clock runs under, copied from the config when attached.

A clock keeps the terms it was attached with (DESIGN invariant 5), so a new version of
the configuration changes new tickets only. A ticket attaches the versions of the
agreements in force at its creation (``ticket.created``'s occurred_at), whenever it
attaches them: at creation, after a reclassification, in the daemon or the simulator.
Calendars are referred to by id and taken from the running configuration: a closure
day added later applies to open tickets too, and a version that moves a department to
other hours names another calendar, which its tickets keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.business_time.calendar import BusinessCalendar
from engine.config import AgreementConfig
from engine.vocabulary import AgreementKind, Metric, Priority, ProviderFunction, Tier


@dataclass(frozen=True, slots=True)
class Agreement:
    """The terms of one clock: whose agreement, its calendar, targets and escalation steps."""

    kind: AgreementKind
    department: str
    service: str
    function: ProviderFunction  # for an OLA the function measured, else the service's owner
    calendar: str
    batch: bool
    targets_s: Mapping[Priority, Mapping[Metric, int]]
    steps: tuple[tuple[float, Tier], ...]
    # From when the versions these terms come from were in force (the latest valid_from
    # among them); None: from the beginning of time.
    valid_from: datetime | None = None
    # The steps' fractions alone, which every measurement of a clock reads, and their
    # tiers, which every step that fires in the simulator reads.
    fractions: tuple[float, ...] = field(init=False, repr=False, compare=False)
    tiers: tuple[Tier, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", tuple(fraction for fraction, _ in self.steps))
        object.__setattr__(self, "tiers", tuple(tier for _, tier in self.steps))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form, for the store."""
        versioned = {} if self.valid_from is None else {"valid_from": self.valid_from.isoformat()}
        return {
            **versioned,
            "kind": self.kind,
            "department": self.department,
            "service": self.service,
            "function": self.function,
            "calendar": self.calendar,
            "batch": self.batch,
            "targets_s": {p: dict(m) for p, m in self.targets_s.items()},
            "steps": [[fraction, tier] for fraction, tier in self.steps],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Agreement:
        """Read back what ``to_json`` wrote."""
        return cls(
            kind=data["kind"],
            department=data["department"],
            service=data["service"],
            function=data["function"],
            calendar=data["calendar"],
            batch=data["batch"],
            targets_s={p: dict(m) for p, m in data["targets_s"].items()},
            steps=tuple((float(f), t) for f, t in data["steps"]),
            # Snapshots stored before versions existed have none: from the beginning.
            valid_from=(
                datetime.fromisoformat(data["valid_from"]) if data.get("valid_from") else None
            ),
        )


class UnknownReference(ValueError):
    """An event names a department or service the configuration does not know."""


def _seconds(
    targets: Mapping[Priority, Mapping[Metric, timedelta]],
) -> dict[Priority, dict[Metric, int]]:
    return {
        p: {m: int(d.total_seconds()) for m, d in per_metric.items()}
        for p, per_metric in targets.items()
    }


def _latest(*starts: datetime | None) -> datetime | None:
    return max((start for start in starts if start is not None), default=None)


def attach_sla(
    config: AgreementConfig,
    department_id: str,
    service_id: str,
    created_at: datetime | None = None,
) -> Agreement:
    """The department's SLA for a service, or the contract's defaults when not ordered,
    in the versions in force at ``created_at`` (None: the first versions)."""
    config = config.at(created_at)
    department = config.departments.get(department_id)
    if department is None:
        raise UnknownReference(f"unknown department {department_id!r}")
    service = config.services.get(service_id)
    if service is None:
        raise UnknownReference(f"unknown service {service_id!r}")
    kind, targets = config.targets_for(department_id, service_id)
    return Agreement(
        kind=kind,
        department=department_id,
        service=service_id,
        function=service.function,
        calendar=config.calendar_for(department_id).id,
        batch=service.batch,
        targets_s=_seconds(targets),
        steps=tuple((step.at, step.tier) for step in config.policy_for(department_id).steps),
        valid_from=_latest(department.valid_from, config.general_contract.valid_from),
    )


def attach_ola(
    config: AgreementConfig,
    function: ProviderFunction,
    department_id: str,
    service_id: str,
    created_at: datetime | None = None,
) -> Agreement | None:
    """The OLA of a provider function on this ticket's calendar, if the function has one,
    in the versions in force at ``created_at``."""
    ola = config.at(created_at).olas.get(function)
    if ola is None:
        return None
    sla = attach_sla(config, department_id, service_id, created_at)
    return Agreement(
        kind="ola",
        department=department_id,
        service=service_id,
        function=function,
        calendar=sla.calendar,
        batch=sla.batch,
        targets_s=_seconds(ola.targets),
        steps=sla.steps,
        valid_from=_latest(ola.valid_from, sla.valid_from),
    )


class CalendarBook:
    """The business calendars of a configuration, built once and shared by every clock."""

    def __init__(self, config: AgreementConfig) -> None:
        self._config = config
        self._built: dict[tuple[str, bool], BusinessCalendar] = {}

    def get(self, calendar_id: str, batch: bool) -> BusinessCalendar:
        """A calendar by id, with batch windows for batch-covered services.

        A calendar that has left the configuration since a clock was attached falls
        back to the contract's default calendar rather than stopping the clock.
        """
        key = (calendar_id, batch)
        calendar = self._built.get(key)
        if calendar is None:
            spec = (
                self._config.calendars.get(calendar_id)
                or self._config.calendars[self._config.general_contract.default_calendar]
            )
            base = self._built.get((calendar_id, False)) or BusinessCalendar(spec)
            self._built[(calendar_id, False)] = base
            calendar = base.with_batch_windows() if batch else base
            self._built[key] = calendar
        return calendar
