"""The notices of a fired step: who gets which text over which channel, with stable ids.

Texts come from the templates in ``templates/`` (``escalation.<language>.txt`` and the
words of ``words.<language>.json``); Danish unless a contact asks for English.
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
from engine.config.models import Contact
from engine.escalation import FiredStep, recipients
from engine.notify.notice import ChannelName, Notice
from engine.vocabulary import Tier

Language = Literal["da", "en"]
ESCALATION_ROUTING_PREFIX = "escalation"
# Fixed for ever: notice ids are derived from it, and receivers dedupe on them.
_NOTICE_NAMESPACE = UUID("2b5f9f64-27c1-4c1e-9a0e-6c1f4f3d8a10")


def notice_id(step: FiredStep, channel: ChannelName, recipient: str) -> UUID:
    """The stable id of one notice: the same step, channel and recipient give the same id."""
    key = f"{step.ticket_id}/{step.clock_key}/{step.step!r}/{channel}/{recipient}"
    return uuid5(_NOTICE_NAMESPACE, key)


def routing_key(tier: Tier, department: str) -> str:
    """The routing key of an escalation on ``helpdesk.escalations``."""
    return f"{ESCALATION_ROUTING_PREFIX}.{tier}.{department}"


@cache
def _template(language: Language) -> tuple[Template, Template, dict[str, Any]]:
    folder = resources.files("engine.notify").joinpath("templates")
    text = folder.joinpath(f"escalation.{language}.txt").read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"escalation.{language}.txt must start with a 'Subject: ' line")
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

    def render(self, step: FiredStep, language: Language, notice: UUID) -> tuple[str, str]:
        """The subject and body of a notice in one language."""
        subject, body, words = _template(language)
        zone = self._zone(step.calendar)
        department = self.config.departments.get(step.department)
        service = self.config.services.get(step.service)
        team = self.config.provider.functions.get(step.function)
        names = {
            "department_name": department.name if department else step.department,
            "function_name": team.name if team else step.function,
        }
        values = {
            "state": words["state"][step.state],
            "advice": words["advice"][step.state],
            "ticket_id": step.ticket_id,
            "metric": words["metric"][step.metric],
            "used": f"{round(step.step * 100)} %",
            "agreement": Template(words["agreement"][step.agreement_kind]).substitute(names),
            "service_name": service.name if service else step.service,
            "priority": step.priority,
            "target": _duration(step.target_s, words),
            "due_local": step.due_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
            "deadline_local": (
                step.deadline.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
                if step.deadline is not None
                else words["no_deadline"]
            ),
            "tier": words["tier"][step.tier],
            "notice_id": str(notice),
            **names,
        }
        return subject.substitute(values), body.substitute(values)

    def payload(self, step: FiredStep, notice: UUID, subject: str, text: str) -> dict[str, Any]:
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
        }

    def notices(self, step: FiredStep) -> list[Notice]:
        """One notice per contact and channel; one AMQP message per step for all of them."""
        contacts = recipients(
            self.config,
            agreement_kind=step.agreement_kind,
            department=step.department,
            service=step.service,
            function=step.function,
            tier=step.tier,
        )
        out = []
        for contact in contacts:
            if contact.email is not None:
                out.append(self._notice(step, "email", contact.email, contact))
            if contact.webhook_url is not None:
                out.append(self._notice(step, "webhook", str(contact.webhook_url), contact))
        on_bus = [c for c in contacts if c.amqp]
        if on_bus:
            language: Language = "en" if all(c.language == "en" for c in on_bus) else "da"
            names = ", ".join(c.name for c in on_bus)
            routing = routing_key(step.tier, step.department)
            out.append(self._notice(step, "amqp", routing, None, language=language, name=names))
        return out

    def _notice(
        self,
        step: FiredStep,
        channel: ChannelName,
        recipient: str,
        contact: Contact | None,
        *,
        language: Language | None = None,
        name: str | None = None,
    ) -> Notice:
        ident = notice_id(step, channel, recipient)
        chosen: Language = language or (contact.language if contact is not None else "da")
        subject, body = self.render(step, chosen, ident)
        return Notice(
            notice_id=ident,
            channel=channel,
            recipient=recipient,
            recipient_name=name or (contact.name if contact is not None else recipient),
            subject=subject,
            body=body,
            payload=self.payload(step, ident, subject, body),
            language=chosen,
        )
