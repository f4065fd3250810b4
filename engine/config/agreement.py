"""The whole agreement configuration, merged from every file of ``config/`` and checked."""

from __future__ import annotations

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


class AgreementConfig(Model):
    """Calendars, catalog, contract, departments' SLAs, OLAs and policies, keyed by id."""

    calendars: dict[str, CalendarEntry]
    services: dict[str, Service]
    escalation_policies: dict[str, EscalationPolicy]
    olas: dict[ProviderFunction, Ola]
    departments: dict[str, Department]
    general_contract: GeneralContract
    provider: Provider
    notices: NoticesConfig = NoticesConfig()  # config/notices.yaml; the defaults without it

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
