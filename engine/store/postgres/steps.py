"""What the PostgreSQL adapters share of escalation steps: their rows and the due channel."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from engine.store.connection import Connection
from engine.store.recording import FiredSteps

# NOTIFY channel that wakes schedulers when a batch sets an earlier due instant.
DUE_CHANNEL = "sla_engine_due"

FIRED_STEPS = """
SELECT ticket_id, clock_key, step, fired_at, status
FROM escalation_steps
WHERE ticket_id = ANY($1::text[])
"""


async def fired_steps(connection: Connection, ticket_ids: Sequence[str]) -> FiredSteps:
    """Every step recorded for these tickets' clocks, with when it fired and whether it
    still stands."""
    rows = await connection.fetch(FIRED_STEPS, ticket_ids)
    found: dict[tuple[str, str], dict[float, tuple[datetime, bool]]] = defaultdict(dict)
    for row in rows:
        found[(row["ticket_id"], row["clock_key"])][row["step"]] = (
            row["fired_at"],
            row["status"] == "fired",
        )
    return found
