"""Digests: the notices a recipient's budget held (or a catch-up gathered), as one message.

Pure. An item is what one held notice would have told, kept as a small JSON document on
the digest's row until the digest is sent; the text is written only then, in the
recipient's language, from ``templates/digest.<language>.{txt,json}``, listing the
items that still stand (a step superseded meanwhile is left out).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from string import Template
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from engine.escalation import FiredStep
from engine.notify.notice import ChannelName, Notice

Language = Literal["da", "en"]


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One held notice: its step, and what its line in the digest tells."""

    ticket_id: str
    clock_key: str
    step: float
    state: str
    tier: str
    metric: str
    agreement: str
    department: str
    service: str
    priority: str
    due_at: str  # RFC 3339
    deadline: str | None  # RFC 3339
    zone: str  # the calendar's time zone, for the local times of the text
    catch_up: bool  # fired for a clock already stopped
    notice_id: str  # the id the notice would have had alone

    @classmethod
    def of(cls, step: FiredStep, *, zone: str, catch_up: bool, notice_id: UUID) -> DigestItem:
        """The item of a fired step's notice."""
        return cls(
            ticket_id=step.ticket_id,
            clock_key=step.clock_key,
            step=step.step,
            state=step.state,
            tier=step.tier,
            metric=step.metric,
            agreement=step.agreement_kind,
            department=step.department,
            service=step.service,
            priority=step.priority,
            due_at=step.due_at.isoformat(),
            deadline=step.deadline.isoformat() if step.deadline is not None else None,
            zone=zone,
            catch_up=catch_up,
            notice_id=str(notice_id),
        )

    def as_json(self) -> dict[str, Any]:
        """The item as stored and as a webhook or AMQP receiver gets it."""
        return asdict(self)

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> DigestItem:
        """The item back from its stored document."""
        return cls(**document)


@dataclass(frozen=True, slots=True)
class Digest:
    """A digest as a sender claims it: to whom, which window, and its items."""

    digest_id: UUID
    channel: ChannelName
    recipient: str
    recipient_name: str
    language: Language
    window_start: datetime
    send_at: datetime
    items: tuple[DigestItem, ...]  # those listed, whose steps still stand
    unlisted: int = 0  # held beyond the items a digest lists (a catch-up of thousands)


@cache
def _texts(language: Language) -> tuple[Template, Template, dict[str, Any]]:
    folder = resources.files("engine.notify").joinpath("templates")
    text = folder.joinpath(f"digest.{language}.txt").read_text(encoding="utf-8")
    first, _, body = text.partition("\n")
    if not first.startswith("Subject: "):
        raise ValueError(f"digest.{language}.txt must start with a 'Subject: ' line")
    words = json.loads(folder.joinpath(f"digest.{language}.json").read_text(encoding="utf-8"))
    return Template(first.removeprefix("Subject: ")), Template(body.lstrip("\n")), words


def _local(at: str | None, zone: str, fallback: str) -> str:
    if at is None:
        return fallback
    return datetime.fromisoformat(at).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def _line(item: DigestItem, words: dict[str, Any]) -> str:
    return Template(words["line"]).substitute(
        ticket_id=item.ticket_id,
        department=item.department,
        service=item.service,
        priority=item.priority,
        metric=words["metric"].get(item.metric, item.metric),
        used=f"{round(item.step * 100)} %",
        state=words["state"].get(item.state, item.state),
        tier=words["tier"].get(item.tier, item.tier),
        deadline_local=_local(item.deadline, item.zone, words["no_deadline"]),
        catch_up=words["catch_up_mark"] if item.catch_up else "",
    )


def compose(digest: Digest) -> Notice:
    """The digest as one notice: subject naming the count and window, a line per item."""
    if not digest.items and not digest.unlisted:
        raise ValueError("a digest needs at least one item")
    subject, body, words = _texts(digest.language)
    zone = digest.items[0].zone if digest.items else "Europe/Copenhagen"
    window = Template(words["window"]).substitute(
        start=_local(digest.window_start.isoformat(), zone, ""),
        end=_local(digest.send_at.isoformat(), zone, "")[11:],  # the date is the start's
    )
    catch_up = sum(item.catch_up for item in digest.items)
    intro = "catch_up" if catch_up == len(digest.items) else "held" if catch_up == 0 else "mixed"
    count = len(digest.items) + digest.unlisted
    lines = [_line(item, words) for item in digest.items]
    if digest.unlisted:
        lines.append(Template(words["unlisted"]).substitute(unlisted=digest.unlisted))
    values = {
        "count": count,
        "what": words["what"]["one" if count == 1 else "many"],
        "window_local": window,
        "intro": words["intro"][intro],
        "lines": "\n".join(lines),
        "digest_id": str(digest.digest_id),
    }
    subject_text, text = subject.substitute(values), body.substitute(values)
    payload = {
        "digest_id": str(digest.digest_id),
        "kind": "digest",
        "window_start": digest.window_start.isoformat(),
        "window_end": digest.send_at.isoformat(),
        "count": count,
        "unlisted": digest.unlisted,
        "items": [item.as_json() for item in digest.items],
        "subject": subject_text,
        "text": text,
    }
    return Notice(
        notice_id=digest.digest_id,
        channel=digest.channel,
        recipient=digest.recipient,
        recipient_name=digest.recipient_name,
        subject=subject_text,
        body=text,
        payload=payload,
    )
