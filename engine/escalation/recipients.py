"""Who hears of an escalation step: the provider side, the department side, or both.

An SLA (or default) clock's step tells the sides its policy step names (by default the
provider alone of a warning, both of the breach and after). The provider side is those
who can still act on the ticket where it is when the step fires; the department side is
the department's contact for the tier. An OLA clock is the provider's own business: it
tells the function's lead, and the IT chief at the strategic tier, whatever the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import AgreementConfig
from engine.config.models import Audience, Contact, CustomerTeam, default_audiences
from engine.escalation.fired import FiredStep
from engine.vocabulary import ProviderFunction, Tier


@dataclass(frozen=True, slots=True)
class Recipients:
    """The contacts told of a step, per side; one on both sides is on the provider's only."""

    provider: tuple[Contact, ...] = ()
    department: tuple[Contact, ...] = ()

    @property
    def everyone(self) -> tuple[Contact, ...]:
        """Every contact told, the provider side first."""
        return self.provider + self.department


def recipients(config: AgreementConfig, step: FiredStep) -> Recipients:
    """The contacts to notify of a fired step, per side.

    Those of the department's version in force when the step fires, not of the version
    the clock keeps: who holds a role is not part of the agreement (a system owner who
    left no longer hears of it).
    """
    config = config.at(step.fired_at)
    if step.agreement_kind == "ola":
        return Recipients(provider=tuple(ola_side(config, step.function, step.tier)))
    heard = audiences_of(config, step.department, step.step)
    provider = (
        provider_side(
            config,
            department=step.department,
            tier=step.tier,
            assigned_function=step.assigned_function,
            assigned_team=step.assigned_team,
        )
        if "provider" in heard
        else []
    )
    department = (
        department_side(config, department=step.department, service=step.service, tier=step.tier)
        if "department" in heard
        else []
    )
    return Recipients(tuple(provider), tuple(c for c in department if c not in provider))


def audiences_of(config: AgreementConfig, department: str, step: float) -> tuple[Audience, ...]:
    """The sides told of a step of the department's escalation policy.

    Read from the configuration in force when the step fires, as the contacts are: who
    hears is not part of the agreement a clock keeps. A step the policy no longer has
    (it changed since the clock was attached) gets the default for its fraction.
    """
    policy = config.policy_for(department)
    written = next((s for s in policy.steps if s.at == step), None)
    return written.heard_by if written is not None else default_audiences(step)


def provider_side(
    config: AgreementConfig,
    *,
    department: str,
    tier: Tier,
    assigned_function: ProviderFunction | None,
    assigned_team: str | None,
) -> list[Contact]:
    """The provider's people who can act on an SLA clock's ticket where it is now.

    While unassigned, the helpdesk lead; once assigned, the contact of the customer team
    it is assigned to when that is a customer team with one, else the lead of the
    function. Always the department's customer team, and at the strategic tier the IT
    chief.
    """
    provider = config.provider
    found: list[Contact] = []
    if assigned_function is None:
        found.append(provider.helpdesk_lead)
    else:
        team = customer_team_contact(config, assigned_team)
        lead = provider.functions.get(assigned_function)
        if team is not None:
            found.append(team)
        elif lead is not None:
            found.append(lead.lead)
    owning = config.departments.get(department)
    if owning is not None and (serving := customer_team_contact(config, owning.customer_team)):
        found.append(serving)
    if tier == "strategic":
        found.append(provider.it_chief)
    return _unique(found)


def department_side(
    config: AgreementConfig, *, department: str, service: str, tier: Tier
) -> list[Contact]:
    """The department's contact for the tier; at the tactical tier the system owner of
    the service where one is named."""
    owning = config.departments.get(department)
    if owning is None:  # left the configuration since the clock was attached
        return []
    contacts = owning.contacts
    if tier == "tactical" and service in contacts.system_owners:
        return [contacts.system_owners[service]]
    contact = contacts.for_tier(tier)
    return [contact] if contact is not None else []


def ola_side(config: AgreementConfig, function: ProviderFunction, tier: Tier) -> list[Contact]:
    """The lead of the measured function, and at the strategic tier the IT chief too."""
    team = config.provider.functions.get(function)
    found = [team.lead] if team is not None else []
    if tier == "strategic":
        found.append(config.provider.it_chief)
    return _unique(found)


def customer_team(config: AgreementConfig, team_id: str | None) -> CustomerTeam | None:
    """The customer team of an id; None for no id, or one that is no customer team."""
    if team_id is None:
        return None
    return next((t for t in config.provider.customer_teams if t.id == team_id), None)


def customer_team_contact(config: AgreementConfig, team_id: str | None) -> Contact | None:
    """The contact of a customer team; None for no team, an unknown one, or one without."""
    team = customer_team(config, team_id)
    return team.contact if team is not None else None


def _unique(contacts: list[Contact]) -> list[Contact]:
    seen: list[Contact] = []
    for contact in contacts:
        if contact not in seen:
            seen.append(contact)
    return seen
