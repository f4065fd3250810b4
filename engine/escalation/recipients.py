"""Who hears of an escalation step: the department's people, or the provider's for an OLA."""

from __future__ import annotations

from engine.config import AgreementConfig
from engine.config.models import Contact
from engine.vocabulary import AgreementKind, ProviderFunction, Tier


def recipients(
    config: AgreementConfig,
    *,
    agreement_kind: AgreementKind,
    department: str,
    service: str,
    function: ProviderFunction,
    tier: Tier,
) -> list[Contact]:
    """The contacts to notify of a step at ``tier`` of a clock under this agreement.

    An SLA (or default) clock tells the department: its contact for the tier, and at
    the tactical tier the system owner of the ticket's service where one is named. An
    OLA clock tells the provider side: the lead of the measured function, and at the
    strategic tier the IT chief as well.
    """
    if agreement_kind == "ola":
        team = config.provider.functions.get(function)
        found = [team.lead] if team is not None else []
        if tier == "strategic":
            found.append(config.provider.it_chief)
        return _unique(found)
    owning = config.departments.get(department)
    if owning is None:  # left the configuration since the clock was attached
        return []
    contacts = owning.contacts
    if tier == "tactical" and service in contacts.system_owners:
        return [contacts.system_owners[service]]
    contact = contacts.for_tier(tier)
    return [contact] if contact is not None else []


def _unique(contacts: list[Contact]) -> list[Contact]:
    seen: list[Contact] = []
    for contact in contacts:
        if contact not in seen:
            seen.append(contact)
    return seen
