"""The JSON Schema of the ticket event contract, generated from the models.

The committed copy lives in ``docs/schema/``; a unit test fails when it drifts from the
models. Regenerate it with::

    .venv/bin/python -m engine.events.schema > docs/schema/ticket-event.v1.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

from engine.events.fields import MAX_BODY_BYTES, SCHEMA_VERSION
from engine.events.models import event_adapter

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = f"https://sla-engine.invalid/schema/ticket-event.v{SCHEMA_VERSION}.json"
SCHEMA_FILE_NAME = f"ticket-event.v{SCHEMA_VERSION}.json"

# What JSON Schema cannot say; the models (engine.events.models) enforce it all.
_DESCRIPTION = (
    f"One ticket event, version {SCHEMA_VERSION} of the contract, published to the "
    "helpdesk.tickets exchange with the event type as routing key. Rules beyond this "
    "schema, enforced by the engine: a body is at most "
    f"{MAX_BODY_BYTES} bytes encoded as UTF-8; ticket.created and ticket.priority_changed "
    "need priority, or both impact and urgency (given both, priority wins); "
    "ticket.reclassified needs department, service or both; ticket.rated's score is a "
    "JSON integer (4, not 4.0); occurred_at must be a date "
    "and time that exists (no 30 February), from 1970-01-01T00:00:00Z up to "
    "2100-01-01T00:00:00Z and at most a few days (a setting) ahead of the engine's "
    "clock; no text may contain the NUL character (\\u0000); a ticket is created once "
    "and holds a bounded number of events. See docs/EVENTS.md."
)


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of any v1 ticket event."""
    generated = event_adapter.json_schema()
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": f"Ticket event (contract v{SCHEMA_VERSION})",
        "description": _DESCRIPTION,
        **generated,
    }


def schema_text() -> str:
    """Return the schema as deterministic JSON text, ending in a newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Print the schema to standard output."""
    sys.stdout.write(schema_text())


if __name__ == "__main__":
    main()
