"""The whole agreement configuration, merged from every file of ``config/`` and checked.

Departments' SLAs, the general contract and OLAs may each come in versions, each in
force from its ``valid_from`` until the next one's (a version without ``valid_from`` is
in force from the beginning of time). ``at(instant)`` is the configuration as it stands
at an instant: one version of each.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import Field, PrivateAttr

from engine.config.models import (
    CalendarEntry,
    Department,
    EscalationPolicy,
    GeneralContract,
    Model,
    Ola,
    Provider,
    Service,
    Targets,
)
from engine.config.notices import NoticesConfig
from engine.vocabulary import AgreementKind, Level, Priority, ProviderFunction

V = TypeVar("V", Department, GeneralContract, Ola)


def in_force(versions: Sequence[V], instant: datetime | None) -> V | None:
    """The version in force at ``instant`` (None: the beginning of time), if any is.

    ``versions`` are in order of ``valid_from``, a version without one first.
    """
    found = None
    for version in versions:
        if version.valid_from is not None and (instant is None or version.valid_from > instant):
            break
        found = version
    return found


class AgreementConfig(Model):
    """Calendars, catalog, contract, departments' SLAs, OLAs and policies, keyed by id.

    ``departments``, ``general_contract`` and ``olas`` are the versions in force at the
    beginning of time; ``at`` gives those in force at any instant, and the
    ``*_versions`` fields hold every version (empty when the configuration has none but
    the first).
    """

    calendars: dict[str, CalendarEntry]
    services: dict[str, Service]
    escalation_policies: dict[str, EscalationPolicy]
    olas: dict[ProviderFunction, Ola]
    departments: dict[str, Department]
    general_contract: GeneralContract
    provider: Provider
    notices: NoticesConfig = NoticesConfig()  # config/notices.yaml; the defaults without it
    # Every version, in order of valid_from; a key left out has only the one above.
    department_versions: dict[str, tuple[Department, ...]] = Field(default_factory=dict)
    contract_versions: tuple[GeneralContract, ...] = ()
    ola_versions: dict[ProviderFunction, tuple[Ola, ...]] = Field(default_factory=dict)
    # The configuration at each instant a version comes into force, made when first asked.
    _eras: dict[int, AgreementConfig] = PrivateAttr(default_factory=dict)
    _starts: tuple[datetime, ...] | None = PrivateAttr(default=None)

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> AgreementConfig:
        """A copy, with caches of its own: a changed copy has other configurations in time."""
        copied = super().model_copy(update=update, deep=deep)
        copied._eras = {}
        copied._starts = None
        return copied

    def versions_of_department(self, department_id: str) -> tuple[Department, ...]:
        """Every version of a department's SLA, in order of ``valid_from``."""
        versions = self.department_versions.get(department_id)
        if versions:
            return versions
        department = self.departments.get(department_id)
        return (department,) if department is not None else ()

    def versions_of_contract(self) -> tuple[GeneralContract, ...]:
        """Every version of the general contract, in order of ``valid_from``."""
        return self.contract_versions or (self.general_contract,)

    def versions_of_ola(self, function: ProviderFunction) -> tuple[Ola, ...]:
        """Every version of a function's OLA, in order of ``valid_from``."""
        versions = self.ola_versions.get(function)
        if versions:
            return versions
        ola = self.olas.get(function)
        return (ola,) if ola is not None else ()

    def version_starts(self) -> tuple[datetime, ...]:
        """Every instant at which some version comes into force, ascending."""
        versions: list[Department | GeneralContract | Ola] = [
            *self.contract_versions,
            *(v for vs in self.department_versions.values() for v in vs),
            *(v for vs in self.ola_versions.values() for v in vs),
        ]
        return tuple(sorted({v.valid_from for v in versions if v.valid_from is not None}))

    def era(self, instant: datetime | None) -> int:
        """How many version starts lie at or before ``instant`` (0 for None): the index
        of the span of time between two starts, in which the configuration is one."""
        if instant is None:
            return 0
        return bisect_right(self._starts_once(), instant)

    def _starts_once(self) -> tuple[datetime, ...]:
        if self._starts is None:
            self._starts = self.version_starts()
        return self._starts

    def at(self, instant: datetime | None) -> AgreementConfig:
        """The configuration at ``instant``: the versions in force then, one of each.

        None is the beginning of time. Without versions (the configuration at an
        instant has none), the configuration itself.
        """
        if not (self.department_versions or self.contract_versions or self.ola_versions):
            return self
        index = self.era(instant)
        found = self._eras.get(index)
        if found is None:
            start = None if index == 0 else self._starts_once()[index - 1]
            departments = {
                key: dep
                for key in dict.fromkeys([*self.departments, *self.department_versions])
                if (dep := in_force(self.versions_of_department(key), start)) is not None
            }
            olas = {
                function: ola
                for function in dict.fromkeys([*self.olas, *self.ola_versions])
                if (ola := in_force(self.versions_of_ola(function), start)) is not None
            }
            contract = in_force(self.versions_of_contract(), start) or self.general_contract
            # One version of each and no others: its own ``at`` is itself.
            found = self.model_copy(
                update={
                    "departments": departments,
                    "olas": olas,
                    "general_contract": contract,
                    "department_versions": {},
                    "contract_versions": (),
                    "ola_versions": {},
                }
            )
            self._eras[index] = found
        return found

    def next_version(self, department_id: str, instant: datetime | None) -> datetime | None:
        """When the agreements of the department next change after ``instant`` (None: the
        beginning of time): its SLA, or the general contract it falls back to."""
        versions: list[Department | GeneralContract] = [
            *self.versions_of_department(department_id),
            *self.versions_of_contract(),
        ]
        later = [
            v.valid_from
            for v in versions
            if v.valid_from is not None and (instant is None or v.valid_from > instant)
        ]
        return min(later, default=None)

    def targets_for(self, department_id: str, service_id: str) -> tuple[AgreementKind, Targets]:
        """The targets a ticket of this department and service runs under, and their source.

        A service the department has ordered runs under its SLA, where each target the
        SLA leaves out is the contract's default; any other service runs under the
        contract's default targets and counts as out of agreement.
        """
        defaults = self.general_contract.default_targets
        department = self.departments.get(department_id)
        ordered = department.services.get(service_id) if department is not None else None
        if ordered is None:
            return "default", defaults
        merged: Targets = {p: dict(per_metric) for p, per_metric in defaults.items()}
        for priority, per_metric in ordered.targets.items():
            merged.setdefault(priority, {}).update(per_metric)
        return "sla", merged

    def policy_for(self, department_id: str) -> EscalationPolicy:
        """The department's escalation policy: its override, else the contract's default."""
        department = self.departments.get(department_id)
        policy_id = (department.escalation_policy if department else None) or (
            self.general_contract.default_escalation_policy
        )
        return self.escalation_policies[policy_id]

    def calendar_for(self, department_id: str) -> CalendarEntry:
        """The department's calendar, else the contract's default calendar."""
        department = self.departments.get(department_id)
        calendar_id = (department.calendar if department else None) or (
            self.general_contract.default_calendar
        )
        return self.calendars[calendar_id]

    def priority(self, impact: Level, urgency: Level) -> Priority:
        """Priority from the contract's impact x urgency matrix."""
        return self.general_contract.priority_matrix[impact][urgency]
