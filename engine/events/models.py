"""The ticket event contract, version 1: what frontends publish to ``helpdesk.tickets``.

Frontend authors read the JSON Schema generated from these models (``docs/schema/``).
Unknown fields and naive timestamps are refused, and every free text is bounded, so a
refused event is refused with a reason rather than stored half-understood. The field
types, strict about the JSON they take, are in ``engine.events.fields``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    TypeAdapter,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from engine.events.fields import (
    Body,
    Channel,
    EventId,
    Instant,
    NoNul,
    RatingComment,
    Ref,
    SchemaVersion,
    ShortText,
    Subject,
    TicketId,
    TicketStatus,
)
from engine.vocabulary import Level, Priority, ProviderFunction


class _Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: SchemaVersion = Field(description="version of this contract")
    event_id: EventId = Field(description="unique per event; a redelivery reuses it")
    ticket_id: TicketId = Field(description="the frontend's ticket number")
    occurred_at: Instant = Field(description="when it happened, RFC 3339 with offset")
    channel: Channel = Field(description="where the event came from")


class Requester(BaseModel):
    """Who raised the ticket: only what is needed to tell them apart and reach them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: ShortText | None = None
    email: ShortText | None = None
    phone: Annotated[str, StringConstraints(max_length=40), NoNul] | None = None


def _empty_if_null(requester: Requester | None) -> Requester:
    return Requester() if requester is None else requester


class _NullAsAbsent:
    """JSON ``null`` for the requester means the same as leaving it out."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            _empty_if_null, core_schema.nullable_schema(handler(source))
        )


class Prioritised(BaseModel):
    """A priority given outright, or impact and urgency for the contract's matrix.

    When both are given, priority wins: impact and urgency are kept but not used.
    """

    priority: Priority | None = None
    impact: Level | None = None
    urgency: Level | None = None

    @model_validator(mode="after")
    def _priority_given(self) -> Self:
        if self.priority is None and (self.impact is None or self.urgency is None):
            raise PydanticCustomError(
                "priority_missing", "Give priority, or both impact and urgency"
            )
        return self


class TicketCreated(_Event, Prioritised):
    """A ticket was raised; its priority is given or derived from impact and urgency.

    When both are given, priority wins: impact and urgency are kept but not used.
    """

    type: Literal["ticket.created"]
    department: Ref
    service: Ref
    requester: Annotated[Requester, _NullAsAbsent()] = Requester()
    subject: Subject
    body: Body | None = None


class TicketResponded(_Event):
    """An agent gave the first (or a later) response to the requester."""

    type: Literal["ticket.responded"]
    agent: ShortText | None = None


class TicketStatusChanged(_Event):
    """The ticket's status changed; a change back to in_progress reopens it."""

    type: Literal["ticket.status_changed"]
    status: TicketStatus


class TicketPriorityChanged(_Event, Prioritised):
    """The priority changed, given outright or through impact and urgency.

    When both are given, priority wins: impact and urgency are kept but not used.
    """

    type: Literal["ticket.priority_changed"]


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
    author_role: Literal["agent", "requester"] | None = Field(
        default=None,
        description="who wrote it: an agent of the provider (the default when absent) or the"
        " requester; a requester's comment is no update from the provider",
    )


class TicketReclassified(_Event):
    """The ticket belongs to another department and/or service than first thought."""

    type: Literal["ticket.reclassified"]
    department: Ref | None = None
    service: Ref | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> TicketReclassified:
        if self.department is None and self.service is None:
            raise PydanticCustomError("reclassified_to_nothing", "Give department, service or both")
        return self


class TicketRated(_Event):
    """The requester rated how the ticket was handled, in the survey after resolution.

    One rating per ticket counts: the latest in ``occurred_at`` order (ties broken by
    ``event_id``, as the clocks read events), whatever order they arrive in. A rating
    moves no clock.
    """

    type: Literal["ticket.rated"]
    # Strict: a JSON integer only; 4.0, "4" and true are refused, as for schema_version.
    score: Annotated[int, Field(strict=True, ge=1, le=5)] = Field(
        description="1 (very dissatisfied) to 5 (very satisfied), a JSON integer"
    )
    comment: RatingComment | None = Field(
        default=None, description="the requester's own words, optional"
    )


TicketEvent = Annotated[
    TicketCreated
    | TicketResponded
    | TicketStatusChanged
    | TicketPriorityChanged
    | TicketAssigned
    | TicketCommented
    | TicketReclassified
    | TicketRated,
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
    "ticket.rated",
)

# The title names the union in errors, instead of pydantic's tagged-union[...] of validators.
event_adapter: TypeAdapter[TicketEvent] = TypeAdapter(
    TicketEvent, config=ConfigDict(title="TicketEvent")
)


def parse_event(raw: bytes | str) -> TicketEvent:
    """Parse and validate one JSON message; raises ``pydantic.ValidationError``."""
    return event_adapter.validate_json(raw)
