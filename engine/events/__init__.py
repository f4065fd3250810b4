"""The ticket event contract (v1) that frontends publish and intake consumes."""

from engine.events.fields import (
    MAX_BODY_BYTES,
    MAX_COMMENT_CHARS,
    MAX_SUBJECT_CHARS,
    SCHEMA_VERSION,
)
from engine.events.models import (
    EVENT_TYPES,
    TicketAssigned,
    TicketCommented,
    TicketCreated,
    TicketEvent,
    TicketPriorityChanged,
    TicketRated,
    TicketReclassified,
    TicketResponded,
    TicketStatusChanged,
    event_adapter,
    parse_event,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_BODY_BYTES",
    "MAX_COMMENT_CHARS",
    "MAX_SUBJECT_CHARS",
    "SCHEMA_VERSION",
    "TicketAssigned",
    "TicketCommented",
    "TicketCreated",
    "TicketEvent",
    "TicketPriorityChanged",
    "TicketRated",
    "TicketReclassified",
    "TicketResponded",
    "TicketStatusChanged",
    "event_adapter",
    "parse_event",
]
