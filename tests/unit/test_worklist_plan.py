"""How PostgreSQL's worklist plans its reads: which parts, which deadlines; pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from engine.store.postgres.reads import worklist_plan
from engine.store.reads import WorklistQuery

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def test_the_plan_refuses_filters_no_ticket_can_pass() -> None:
    query = WorklistQuery(now=NOW, limit=5)
    for state in ("running", "paused", "met"):
        assert worklist_plan(replace(query, state=state, breached=True)) is None
    assert worklist_plan(replace(query, state="breached", breached=False)) is None
    # Breaching within a span and breached: no clock is both; nothing is read by deadline.
    plan = worklist_plan(replace(query, breached=True, breaching_within=timedelta(hours=1)))
    assert plan is not None
    assert not plan.by_deadline
    # Breached: the overdue by deadline, up to now, then those breached while waiting.
    plan = worklist_plan(replace(query, breached=True))
    assert plan is not None
    assert plan.by_deadline
    assert plan.breached_waiting
    assert (plan.lowest, plan.highest) == (None, NOW)
