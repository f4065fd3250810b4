"""Fuzzing the running engine's intake: mutated messages between valid ones, through the
real RabbitMQ and PostgreSQL.

Hypothesis mutates valid events at the byte, JSON and field level, and mixes in the known
poison classes. Whatever it sends, every valid event is recorded once, every message the
engine does not record is in the dead-letter queue once with a reason that is not the
engine's own failure, no batch goes back to the queue, and the engine goes on consuming.
``SLA_ENGINE_FUZZ_EXAMPLES`` sets the number of examples: a few in ``make test``, more in
``make test-faults``.
"""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.events import parse_event
from engine.intake import topology
from engine.intake.publish import publish_events
from tests.integration.conftest import RunningEngine
from tests.poison import SENTINEL, TROUBLE, dead_letters, poison_classes, publish_with_ids, settled
from tests.services import AMQP_URL
from tests.streams import FUTURE_MONDAY, lines, stream
from tests.streams import event as an_event

pytestmark = pytest.mark.integration
EXAMPLES = int(os.environ.get("SLA_ENGINE_FUZZ_EXAMPLES", "8"))

# JSON values of every kind, with the texts and numbers that have broken parsers before.
_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["\x00", "a\x00b", "\ud800", "\udfff", "\u2028", "\ufeff", "💥" * 50]),
    st.sampled_from(["0001-01-01T00:30:00+01:00", "9999-12-31T23:59:59-23:59",
                     "1969-12-31T23:59:59Z", "2300-01-01T00:00:00Z", "2026-02-30T10:00:00Z",
                     "2026-11-23T09:15:00+24:00", "2026-11-23T09:15:60Z"]),
)  # fmt: skip
_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, 1.5e308]),
    st.floats(allow_nan=False),
    _TEXT,
)
_JSON = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _dumps(value: object) -> bytes:
    # Lone surrogates cannot be encoded to UTF-8: ensure_ascii keeps them as escapes.
    return json.dumps(value, ensure_ascii=True).encode()


@st.composite
def _mutated(draw: st.DrawFn, base: dict[str, Any]) -> bytes:
    """One valid event made bad (or, by chance, still good) at one level."""
    level = draw(st.sampled_from(["byte", "json", "field", "drop", "nest"]))
    if level == "field":
        key = draw(st.sampled_from(sorted(base)))
        return _dumps({**base, key: draw(_JSON)})
    if level == "drop":
        key = draw(st.sampled_from(sorted(base)))
        return _dumps({k: v for k, v in base.items() if k != key})
    if level == "json":
        return _dumps(draw(_JSON))
    if level == "nest":
        depth = draw(st.integers(min_value=1, max_value=6000))
        return b"[" * depth + _dumps(base) + b"]" * draw(st.sampled_from([0, depth]))
    raw = bytearray(_dumps(base))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            raw[at] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif action == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del raw[at]
    return bytes(raw)


@st.composite
def _batch(draw: st.DrawFn) -> list[bytes]:
    """Bad messages: mutated events of fresh tickets, and known poison."""
    prefix = f"FZ-{uuid4().hex[:10]}"
    bases = stream(3, prefix=prefix)
    # The streams tell no rating (their tickets' lengths are counted on elsewhere).
    bases.append(an_event("ticket.rated", f"{prefix}-0", 9, FUTURE_MONDAY, score=4, comment="Tak"))
    bodies = []
    for n in range(draw(st.integers(min_value=1, max_value=25))):
        base = {**draw(st.sampled_from(bases)), "event_id": str(uuid4())}
        base["ticket_id"] = f"{prefix}-m{n}"
        bodies.append(draw(_mutated(base)))
    poison = draw(st.lists(st.sampled_from(poison_classes(0)), max_size=4))
    return bodies + [p.body for p in poison]


def _event_id(body: bytes) -> UUID | None:
    """The id the engine records a message under, when the contract accepts it."""
    try:
        return parse_event(body).event_id
    except ValidationError:
        return None


@pytest.mark.timeout(30 + 2 * EXAMPLES)  # about 0.2 s an example; all of them in one test
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(bad=_batch(), seed=st.integers(min_value=0, max_value=2**16))
async def test_whatever_arrives_every_message_is_recorded_or_dead_lettered_once(
    bad: list[bytes],
    seed: int,
    engine: RunningEngine,
    db: asyncpg.Connection,
    broker: aio_pika.abc.AbstractChannel,
    logs: list[MutableMapping[str, Any]],
) -> None:
    good = stream(4, seed=seed, prefix=f"OK-{uuid4().hex[:10]}")
    ids = [f"fuzz-{uuid4().hex}" for _ in bad]
    third = len(good) // 3
    await publish_events(lines(good[:third]), AMQP_URL)
    await publish_with_ids(list(zip(bad, ids, strict=True)))
    await publish_events(lines(good[third:]), AMQP_URL)
    await settled(db, lambda: engine.consumer.held)

    dead = await dead_letters(broker)
    dead_ids = [str(message.message_id) for message in dead]
    assert len(dead_ids) == len(set(dead_ids)), "a message dead-lettered twice"
    assert set(dead_ids) <= set(ids), "a good message dead-lettered"
    for message in dead:
        reason = str((message.headers or {}).get(topology.REASON_HEADER, ""))
        assert reason, f"dead-lettered without a reason: {message.body[:200]!r}"
        assert not reason.startswith("internal error"), (reason, message.body[:300])
    recorded = {
        row["event_id"]
        for row in await db.fetch(
            "SELECT event_id FROM events WHERE ticket_id NOT LIKE $1", f"{SENTINEL}%"
        )
    }
    for event in good:
        assert UUID(event["event_id"]) in recorded
    for body, message_id in zip(bad, ids, strict=True):
        if message_id not in dead_ids:  # then it was good after all, and recorded
            event_id = _event_id(body)
            assert event_id is not None, f"neither recorded nor dead-lettered: {body[:300]!r}"
            assert event_id in recorded
    assert engine.consumer.consuming
    assert not TROUBLE & {entry["event"] for entry in logs}
