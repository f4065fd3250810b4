"""The SLA feed's messages: built from stored clocks, routed by state, held to the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jsonschema import Draft202012Validator

from engine.feed.contract import feed_message, message_id, routing_key, schema_text, ticket_state
from engine.store.feed import FeedClock, FeedTicket
from tests.helpers import REPO

T0 = datetime(2026, 12, 3, 8, tzinfo=UTC)
HOUR = timedelta(hours=1)


def clock(key: str = "resolution", **fields: Any) -> FeedClock:
    values: dict[str, Any] = {
        "key": key, "metric": "resolution", "agreement_kind": "sla",
        "agreement_key": "sla:okf:opus-loen", "function": "server-network", "priority": "P2",
        "state": "running", "running": True, "target_s": 28800.0, "elapsed_s": 3600.0,
        "fraction": 0.125, "started_at": T0, "stopped_at": None, "deadline": T0 + 8 * HOUR,
        "measured_at": T0 + HOUR, "steps": (0.5, 1.0), "tiers": ("operational", "tactical"),
        "step_due_at": (T0 + 4 * HOUR, T0 + 8 * HOUR), "next_due_at": T0 + 4 * HOUR,
    }  # fmt: skip
    values.update(fields)
    return FeedClock(**values)


def ticket(*clocks: FeedClock, version: int = 3) -> FeedTicket:
    return FeedTicket("INC-7", version, "okf", "opus-loen", "P2", "in_progress",
                      "server-network", clocks)  # fmt: skip


def test_a_ticket_is_in_the_state_of_its_most_pressing_open_clock() -> None:
    stopped = clock("response", state="breached", running=False, stopped_at=T0)
    paused = clock(state="paused", running=False, deadline=None)
    assert ticket_state((stopped, paused)) == "paused"  # a stopped breach is history
    assert ticket_state((paused, clock("update:x"))) == "running"
    assert ticket_state((clock(), clock("ola:1:x", state="breached"))) == "breached"
    assert ticket_state((stopped,)) == "stopped"
    assert ticket_state(()) == "stopped"


def test_the_message_tells_each_clock_and_its_next_step() -> None:
    fired_first = clock(next_due_at=T0 + 8 * HOUR)
    done = clock("response", state="met", running=False, stopped_at=T0, next_due_at=None)
    message = feed_message(ticket(fired_first, done))
    assert (message.ticket_id, message.version, message.state) == ("INC-7", 3, "running")
    resolution, response = message.clocks
    assert resolution.next_step is not None
    assert (resolution.next_step.fraction, resolution.next_step.tier) == (1.0, "tactical")
    assert response.next_step is None
    assert routing_key(ticket(fired_first), message.state) == "sla.okf.running"
    assert message_id(ticket(fired_first)) == "INC-7:3"


def test_a_message_meets_the_committed_schema_and_the_schema_can_refuse() -> None:
    schema = json.loads((REPO / "docs" / "schema" / "sla-feed.v1.json").read_text())
    validator = Draft202012Validator(schema)
    update = clock("update:2026-12-03T08:00:00Z", metric="update")
    body = json.loads(feed_message(ticket(clock(), update)).model_dump_json())
    assert list(validator.iter_errors(body)) == []
    assert list(validator.iter_errors({**body, "version": 0})) != []
    assert list(validator.iter_errors({**body, "state": "late"})) != []


def test_the_committed_schema_is_the_generated_one() -> None:
    committed = (REPO / "docs" / "schema" / "sla-feed.v1.json").read_text()
    assert committed == schema_text(), (
        "docs/schema/sla-feed.v1.json drifted: "
        ".venv/bin/python -m engine.feed.contract > docs/schema/sla-feed.v1.json"
    )
