"""The notices of a fired step: who gets which text over which channel, with stable ids.

Texts come from the templates in ``templates/`` (``escalation.<language>.txt`` for the
department side, ``provider.<language>.txt`` for the provider side, and the words of
``words.<language>.json``); Danish unless a contact asks for English. Every notice of one
ticket's clock has the same subject and thread key, whichever its step or side, so that
a mail reader shows them as one conversation.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from string import Template
from typing import Any, Literal
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from engine.config import AgreementConfig
from engine.config.models import Audience, Contact
from engine.escalation import FiredStep, recipients
from engine.escalation.recipients import customer_team
from engine.notify.notice import ChannelName, Notice
from engine.vocabulary import Tier

Language = Literal["da", "en"]
ESCALATION_ROUTING_PREFIX = "escalation"
# Fixed for ever: notice ids are derived from it, and receivers dedupe on them.
NOTICE_NAMESPACE = UUID("2b5f9f64-27c1-4c1e-9a0e-6c1f4f3d8a10")
# Fixed for ever too: a clock's thread key is derived from it, and mail readers thread on it.
_THREAD_NAMESPACE = UUID("6d0f3c1e-8a57-4f0b-b1d2-5e9a7c4b2f18")
_TEMPLATE_OF: dict[Audience, str] = {"department": "escalation", "provider": "provider"}


def notice_id(
    step: FiredStep, channel: ChannelName, recipient: str, audience: Audience = "department"
) -> UUID:
    """The stable id of one notice: the same step, channel, recipient and side give the same id.

    The department side's ids are derived as before the provider side was told, so a
    receiver that saw a notice before an upgrade recognises it after.
    """
    key = f"{step.ticket_id}/{step.clock_key}/{step.step!r}/{channel}/{recipient}"
    return uuid5(NOTICE_NAMESPACE, key if audience == "department" else f"{key}/{audience}")


def thread_id(ticket_id: str, clock_key: str) -> UUID:
    """The stable key of the conversation of one ticket's clock: every step, either side."""
    return uuid5(_THREAD_NAMESPACE, f"{ticket_id}/{clock_key}")


def routing_key(tier: Tier, department: str, audience: Audience = "department") -> str:
    """The routing key of an escalation on ``helpdesk.escalations``.

    The provider side's carry a last word ``provider``, so that a consumer binds to one
    side: ``escalation.*.okf`` (the department's) or ``escalation.*.okf.provider``.
    """
    key = f"{ESCALATION_ROUTING_PREFIX}.{tier}.{department}"
    return key if audience == "department" else f"{key}.{audience}"


@cache
def _template(language: Language, audience: Audience) -> tuple[Template, Template, dict[str, Any]]:
    folder = resources.files("engine.notify").joinpath("templates")
    name = f"{_TEMPLATE_OF[audience]}.{language}.txt"
    text = folder.joinpath(name).read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"{name} must start with a 'Subject: ' line")
    words = json.loads(folder.joinpath(f"words.{language}.json").read_text(encoding="utf-8"))
    return Template(first.removeprefix("Subject: ")), Template(body.lstrip("\n")), words


def _duration(seconds: float, words: dict[str, Any]) -> str:
    minutes = round(seconds / 60)
    hours, minutes = divmod(minutes, 60)
    parts = ([f"{hours} {words['hours']}"] if hours else []) + (
        [f"{minutes} {words['minutes']}"] if minutes or not hours else []
    )
    return " ".join(parts)


class Composer:
    """Writes the notices of fired steps under one agreement configuration; pure."""

    def __init__(self, config: AgreementConfig) -> None:
        self.config = config

    def _zone(self, calendar: str) -> ZoneInfo:
        entry = (
            self.config.calendars.get(calendar)
            or self.config.calendars[self.config.general_contract.default_calendar]
        )
        return entry.zone

    def render(
        self, step: FiredStep, language: Language, notice: UUID, audience: Audience = "department"
    ) -> tuple[str, str]:
        """The subject and body of a notice in one language, for one side."""
        subject, body, words = _template(language, audience)
        zone = self._zone(step.calendar)
        department = self.config.at(step.fired_at).departments.get(step.department)
        service = self.config.services.get(step.service)
        team = self.config.provider.functions.get(step.function)
        names = {
            "department_name": department.name if department else step.department,
            "function_name": team.name if team else step.function,
        }
        metric = words["metric"][step.metric]
        deadline = (
            step.deadline.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
            if step.deadline is not None
            else words["no_deadline"]
        )
        values = {
            "state": words["state"][step.state],
            "advice": words["advice"][step.state],
            "ticket_id": step.ticket_id,
            "metric": metric,
            # The clock the thread is about: nothing in it changes from step to step.
            "clock_name": (
                Template(words["ola_clock"]).substitute(names, metric=metric)
                if step.agreement_kind == "ola"
                else metric
            ),
            "used": f"{round(step.step * 100)} %",
            "agreement": Template(words["agreement"][step.agreement_kind]).substitute(names),
            "service_name": service.name if service else step.service,
            "priority": step.priority,
            "target": _duration(step.target_s, words),
            "due_local": step.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            "deadline_local": deadline,
            "tier": words["tier"][step.tier],
            "assignee": self._assignee(step, words),
            "notice_id": str(notice),
            **names,
        }
        values["provider_advice"] = Template(words["provider_advice"][step.state]).substitute(
            values
        )
        return subject.substitute(values), body.substitute(values)

    def _assignee(self, step: FiredStep, words: dict[str, Any]) -> str:
        """Where the ticket is: its customer team, else its function; or nowhere yet."""
        if step.assigned_function is None:
            return str(words["unassigned"])
        team = customer_team(self.config, step.assigned_team)
        if team is not None and team.contact is not None:  # as recipients.provider_side
            return team.name
        function = self.config.provider.functions.get(step.assigned_function)
        return function.name if function is not None else step.assigned_function

    def payload(
        self,
        step: FiredStep,
        notice: UUID,
        subject: str,
        text: str,
        audience: Audience = "department",
    ) -> dict[str, Any]:
        """The JSON document a webhook or AMQP receiver gets."""
        return {
            "notice_id": str(notice),
            "ticket_id": step.ticket_id,
            "clock": step.clock_key,
            "metric": step.metric,
            "agreement": step.agreement_kind,
            "department": step.department,
            "service": step.service,
            "function": step.function,
            "priority": step.priority,
            "step": step.step,
            "state": step.state,
            "tier": step.tier,
            "target_s": step.target_s,
            "due_at": step.due_at.isoformat(),
            "fired_at": step.fired_at.isoformat(),
            "deadline": step.deadline.isoformat() if step.deadline is not None else None,
            "subject": subject,
            "text": text,
            "audience": audience,
            "thread": str(thread_id(step.ticket_id, step.clock_key)),
            "assigned_function": step.assigned_function,
            "assigned_team": step.assigned_team,
        }

    def notices(self, step: FiredStep, *, written: bool = True) -> list[Notice]:
        """One notice per contact and channel, per side; one AMQP message per step and side.

        A contact on both sides gets one notice, the provider side's: it can still act.
        With ``written`` false the notices are addressed but not written (no subject,
        body or payload): a catch-up's, which only ever go out as items of a digest,
        written from the step when the digest is sent. Writing them cost the scheduler
        most of its time while a backlog of closed tickets drained.
        """
        heard = recipients(self.config, step)
        out: list[Notice] = []
        addressed: set[tuple[ChannelName, str]] = set()
        sides: tuple[tuple[Audience, tuple[Contact, ...]], ...] = (
            ("provider", heard.provider),
            ("department", heard.department),
        )
        for audience, contacts in sides:
            for contact in contacts:
                addresses: tuple[tuple[ChannelName, str | None], ...] = (
                    ("email", contact.email),
                    ("webhook", None if contact.webhook_url is None else str(contact.webhook_url)),
                )
                for channel, address in addresses:
                    # Two contacts of one address (the same mailbox named twice) get one.
                    if address is None or (channel, address) in addressed:
                        continue
                    addressed.add((channel, address))
                    out.append(
                        self._notice(step, channel, address, contact, audience, written=written)
                    )
            on_bus = [c for c in contacts if c.amqp]
            if on_bus:
                language: Language = "en" if all(c.language == "en" for c in on_bus) else "da"
                names = ", ".join(c.name for c in on_bus)
                routing = routing_key(step.tier, step.department, audience)
                out.append(
                    self._notice(
                        step,
                        "amqp",
                        routing,
                        None,
                        audience,
                        language=language,
                        name=names,
                        written=written,
                    )
                )
        return out

    def _notice(
        self,
        step: FiredStep,
        channel: ChannelName,
        recipient: str,
        contact: Contact | None,
        audience: Audience,
        *,
        language: Language | None = None,
        name: str | None = None,
        written: bool = True,
    ) -> Notice:
        ident = notice_id(step, channel, recipient, audience)
        chosen: Language = language or (contact.language if contact is not None else "da")
        if not written:
            return Notice(
                notice_id=ident,
                channel=channel,
                recipient=recipient,
                recipient_name=name or (contact.name if contact is not None else recipient),
                subject="",
                body="",
                payload={},
                language=chosen,
            )
        subject, body = self.render(step, chosen, ident, audience)
        return Notice(
            notice_id=ident,
            channel=channel,
            recipient=recipient,
            recipient_name=name or (contact.name if contact is not None else recipient),
            subject=subject,
            body=body,
            payload=self.payload(step, ident, subject, body, audience),
            language=chosen,
        )
