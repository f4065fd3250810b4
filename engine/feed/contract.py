"""The SLA feed's output contract (v1): one message per ticket per change of its clocks.

Published on the topic exchange ``helpdesk.sla`` with routing key
``sla.<department>.<state>`` (``state``: the ticket's, see ``ticket_state``), persistent,
``message_id`` ``<ticket_id>:<version>``. ``version`` rises with every commit that changed
the ticket's clocks; a consumer keeps the highest it has seen per ticket and drops a
message with a version not above it (a duplicate, or one overtaken). Each message holds
the ticket's whole SLA state, so one that is skipped loses nothing.

The committed schema is ``docs/schema/sla-feed.v1.json``; a unit test fails when it
drifts. Regenerate with::

    .venv/bin/python -m engine.feed.contract > docs/schema/sla-feed.v1.json
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.sla_clock.clocks import ClockState
from engine.store.feed import FeedClock, FeedTicket
from engine.vocabulary import AgreementKind, Metric, Priority, Tier

FEED_EXCHANGE = "helpdesk.sla"
FEED_SCHEMA_VERSION = 1
FEED_SCHEMA_ID = f"https://sla-engine.invalid/schema/sla-feed.v{FEED_SCHEMA_VERSION}.json"
TicketSlaState = Literal["breached", "running", "paused", "stopped"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NextStep(_Model):
    """The clock's next escalation step not fired yet."""

    fraction: float = Field(description="the share of the target at which it fires")
    tier: Tier
    due_at: datetime


class FeedClockV1(_Model):
    """One clock of the ticket as its last measurement left it."""

    key: str = Field(description="response, resolution, update:<start>, ola:<n>:<function>...")
    metric: Metric
    agreement: AgreementKind
    agreement_key: str
    function: str = Field(description="the provider function: the OLA's, or the service owner")
    priority: Priority
    state: ClockState = Field(
        description="as last measured: a running clock breaches at its deadline without "
        "a new message unless a step fires then (the breach step does)"
    )
    running: bool
    target_s: float
    elapsed_s: float = Field(description="business time used, as of measured_at")
    fraction: float = Field(description="elapsed_s / target_s, as of measured_at")
    started_at: datetime
    stopped_at: datetime | None
    deadline: datetime | None = Field(description="when it breaches; null while paused")
    measured_at: datetime
    next_step: NextStep | None


class SlaFeedMessage(_Model):
    """A ticket's SLA clocks after a commit that changed them."""

    schema_version: Literal[1] = 1
    ticket_id: str
    version: int = Field(ge=1, description="rises with every change; keep the highest")
    department: str
    service: str
    priority: Priority
    status: str
    assigned_function: str | None
    state: TicketSlaState = Field(
        description="breached: an open clock is breached; else running or paused: an open "
        "clock runs or waits; stopped: no clock is open"
    )
    clocks: list[FeedClockV1]


def ticket_state(clocks: tuple[FeedClock, ...]) -> TicketSlaState:
    """The ticket's state for routing: the most pressing of its open clocks."""
    open_clocks = [clock for clock in clocks if clock.stopped_at is None]
    if any(clock.state == "breached" for clock in open_clocks):
        return "breached"
    if any(clock.running for clock in open_clocks):
        return "running"
    return "paused" if open_clocks else "stopped"


def routing_key(ticket: FeedTicket, state: TicketSlaState) -> str:
    """``sla.<department>.<state>``: a frontend binds to what it shows."""
    return f"sla.{ticket.department}.{state}"


def message_id(ticket: FeedTicket) -> str:
    return f"{ticket.ticket_id}:{ticket.version}"


def feed_message(ticket: FeedTicket) -> SlaFeedMessage:
    """The message of one ticket's version.

    Built without validation (``model_construct``): the values are the engine's own, as
    it stored them, and this runs for every change of every ticket.
    """
    fields: dict[str, Any] = {
        "schema_version": FEED_SCHEMA_VERSION,
        "ticket_id": ticket.ticket_id,
        "version": ticket.version,
        "department": ticket.department,
        "service": ticket.service,
        "priority": ticket.priority,
        "status": ticket.status,
        "assigned_function": ticket.assigned_function,
        "state": ticket_state(ticket.clocks),
        "clocks": [_clock(clock) for clock in ticket.clocks],
    }
    return SlaFeedMessage.model_construct(**fields)


def _clock(clock: FeedClock) -> FeedClockV1:
    fields: dict[str, Any] = {
        "key": clock.key,
        "metric": clock.metric,
        "agreement": clock.agreement_kind,
        "agreement_key": clock.agreement_key,
        "function": clock.function,
        "priority": clock.priority,
        "state": clock.state,
        "running": clock.running,
        "target_s": clock.target_s,
        "elapsed_s": clock.elapsed_s,
        "fraction": clock.fraction,
        "started_at": clock.started_at,
        "stopped_at": clock.stopped_at,
        "deadline": clock.deadline,
        "measured_at": clock.measured_at,
        "next_step": _next_step(clock),
    }
    return FeedClockV1.model_construct(**fields)


def _next_step(clock: FeedClock) -> NextStep | None:
    """The step whose due instant is the clock's next one (the earliest not fired)."""
    if clock.next_due_at is None:
        return None
    for fraction, tier, due_at in zip(clock.steps, clock.tiers, clock.step_due_at, strict=False):
        if due_at == clock.next_due_at:
            fields: dict[str, Any] = {"fraction": fraction, "tier": tier, "due_at": due_at}
            return NextStep.model_construct(**fields)
    return None  # a retry instant of a clock that failed to fire: no step of its own


def json_schema() -> dict[str, Any]:
    """The message's JSON Schema (2020-12)."""
    generated = SlaFeedMessage.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": FEED_SCHEMA_ID,
        "title": "sla-engine SLA feed message, v1",
        **{key: value for key, value in generated.items() if key != "title"},
    }


def schema_text() -> str:
    """The schema as deterministic JSON text, ending in a newline."""
    return json.dumps(json_schema(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    print(schema_text(), end="")
