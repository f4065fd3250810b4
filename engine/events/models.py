"""The ticket event contract, version 1: what frontends publish to ``helpdesk.tickets``.

Frontend authors read the JSON Schema generated from these models (``docs/schema/``).
Unknown fields and naive timestamps are refused, and every free text is bounded, so a
refused event is refused with a reason rather than stored half-understood.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from engine.config.models import Level, Priority, ProviderFunction

SCHEMA_VERSION = 1
MAX_SUBJECT_CHARS = 500
MAX_BODY_BYTES = 64 * 1024

Channel = Literal["email", "phone", "web", "api"]
TicketStatus = Literal[
    "new", "in_progress", "pending_customer", "pending_third_party", "resolved", "closed"
]
TicketId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
]
Ref = Annotated[str, StringConstraints(min_length=1, max_length=64)]
ShortText = Annotated[str, StringConstraints(max_length=200)]


def _within_body_limit(text: str) -> str:
    size = len(text.encode("utf-8"))
    if size > MAX_BODY_BYTES:
        raise ValueError(f"body is {size} bytes; at most {MAX_BODY_BYTES} are accepted")
    return text


Body = Annotated[str, AfterValidator(_within_body_limit)]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=MAX_SUBJECT_CHARS)]


class _Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = Field(description="version of this contract")
    event_id: UUID = Field(description="unique per event; a redelivery reuses it")
    ticket_id: TicketId = Field(description="the frontend's ticket number")
    occurred_at: AwareDatetime = Field(description="when it happened, RFC 3339 with offset")
    channel: Channel = Field(description="where the event came from")


class Requester(BaseModel):
    """Who raised the ticket: only what is needed to tell them apart and reach them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ShortText | None = None
    email: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=40)] | None = None


class TicketCreated(_Event):
    """A ticket was raised; its priority is given or derived from impact and urgency."""

    type: Literal["ticket.created"]
    department: Ref
    service: Ref
    priority: Priority | None = None
    impact: Level | None = None
    urgency: Level | None = None
    requester: Requester = Requester()
    subject: Subject
    body: Body | None = None

    @model_validator(mode="after")
    def _priority_or_matrix(self) -> TicketCreated:
        if self.priority is None and (self.impact is None or self.urgency is None):
            raise ValueError("give priority, or both impact and urgency")
        return self


class TicketResponded(_Event):
    """An agent gave the first (or a later) response to the requester."""

    type: Literal["ticket.responded"]
    agent: ShortText | None = None


class TicketStatusChanged(_Event):
    """The ticket's status changed; a change back to in_progress reopens it."""

    type: Literal["ticket.status_changed"]
    status: TicketStatus


class TicketPriorityChanged(_Event):
    """The priority changed, given outright or through impact and urgency."""

    type: Literal["ticket.priority_changed"]
    priority: Priority | None = None
    impact: Level | None = None
    urgency: Level | None = None

    @model_validator(mode="after")
    def _priority_or_matrix(self) -> TicketPriorityChanged:
        if self.priority is None and (self.impact is None or self.urgency is None):
            raise ValueError("give priority, or both impact and urgency")
        return self


class TicketAssigned(_Event):
    """The ticket was assigned to a provider function (and optionally one of its teams)."""

    type: Literal["ticket.assigned"]
    function: ProviderFunction
    team: Ref | None = None


class TicketCommented(_Event):
    """A comment; a public one is an update the requester sees."""

    type: Literal["ticket.commented"]
    visibility: Literal["public", "internal"]
    body: Body
    author: ShortText | None = None


class TicketReclassified(_Event):
    """The ticket belongs to another department and/or service than first thought."""

    type: Literal["ticket.reclassified"]
    department: Ref | None = None
    service: Ref | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> TicketReclassified:
        if self.department is None and self.service is None:
            raise ValueError("give department, service or both")
        return self


TicketEvent = Annotated[
    TicketCreated
    | TicketResponded
    | TicketStatusChanged
    | TicketPriorityChanged
    | TicketAssigned
    | TicketCommented
    | TicketReclassified,
    Field(discriminator="type"),
]
"""Any v1 ticket event, told apart by its ``type``."""

EVENT_TYPES: tuple[str, ...] = (
    "ticket.created",
    "ticket.responded",
    "ticket.status_changed",
    "ticket.priority_changed",
    "ticket.assigned",
    "ticket.commented",
    "ticket.reclassified",
)

event_adapter: TypeAdapter[TicketEvent] = TypeAdapter(TicketEvent)


def parse_event(raw: bytes | str) -> TicketEvent:
    """Parse and validate one JSON message; raises ``pydantic.ValidationError``."""
    return event_adapter.validate_json(raw)
