"""A notice as it waits in the outbox, and the port every delivery channel implements."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

ChannelName = Literal["email", "webhook", "amqp"]
CHANNELS: tuple[ChannelName, ...] = ("email", "webhook", "amqp")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file an e-mail carries: a monthly report's CSV, say (text, UTF-8)."""

    filename: str
    content_type: str  # "text/csv"
    content: str

    def as_json(self) -> dict[str, str]:
        """The attachment as the outbox stores it."""
        return {"filename": self.filename, "content_type": self.content_type,
                "content": self.content}  # fmt: skip

    @classmethod
    def from_json(cls, document: dict[str, str]) -> Attachment:
        """The attachment back from its stored document."""
        return cls(document["filename"], document["content_type"], document["content"])


@dataclass(frozen=True)
class Notice:
    """One notice to one recipient over one channel: an escalation step's, a digest or a
    monthly report.

    ``notice_id`` is stable: derived from the ticket, clock, step, recipient and channel
    (a monthly report's from the department, month, recipient and channel), so a resend
    after a crash carries the same id and the receiver can recognise it.
    """

    notice_id: UUID
    channel: ChannelName
    recipient: str  # an e-mail address, a webhook URL, or an AMQP routing key
    recipient_name: str
    subject: str
    body: str  # plain text, in the recipient's language
    payload: dict[str, Any] = field(default_factory=dict)  # the JSON document of webhook/AMQP
    language: Literal["da", "en"] = "da"  # of the text; a digest of held notices uses it too
    html: str | None = None  # an e-mail's HTML alternative to ``body``; other channels ignore it
    attachments: tuple[Attachment, ...] = ()  # files an e-mail carries; other channels ignore them


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes a webhook or AMQP receiver gets for a payload (and a signature signs)."""
    return json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()


class DeliveryError(Exception):
    """A notice was not delivered; ``permanent`` when trying again cannot help."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """Delivers notices of one kind; raises ``DeliveryError`` when it cannot."""

    name: ChannelName

    async def deliver(self, notice: Notice) -> None:
        """Deliver one notice, or raise ``DeliveryError``."""

    async def close(self) -> None:
        """Release connections."""
