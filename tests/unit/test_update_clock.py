"""The update clock's cycles and the OLA response clock, from a ticket's events.

BUF's ESDH at P2 under the office calendar (08:00-16:00 on weekdays): response 1h,
resolution 8h, and the general contract's update interval of 2h (P1: 1h; P3 sets none).
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import TicketEvent
from engine.simulate.core import simulate
from engine.sla_clock.clocks import Clock, TicketClocks
from engine.sla_clock.meter import ClockMeter
from tests.unit.test_clocks import at, clock, config, created, event, measure, status


def cycles(result: TicketClocks) -> list[Clock]:
    return [c for c in result.clocks if c.metric == "update"]


def summary(result: TicketClocks) -> list[tuple[object, ...]]:
    """Each cycle's start, stop, state and business hours."""
    return [
        (c.started_at, c.stopped_at, c.state, c.elapsed / timedelta(hours=1))
        for c in cycles(result)
    ]


def responded(hours: float) -> TicketEvent:
    return event("ticket.responded", at(hours))


def public(hours: float, **fields: Any) -> TicketEvent:
    return event("ticket.commented", at(hours), visibility="public", body="Status", **fields)


def public_at(when: datetime) -> TicketEvent:
    return event("ticket.commented", when, visibility="public", body="Status")


def test_the_first_response_starts_the_cycles_and_each_update_the_next() -> None:
    result = measure(
        [created(at()), public(0.2), responded(0.5), public(1.5), public(4.5)], as_of=at(5)
    )
    # The comment before the first response starts nothing: the response clock measures
    # that wait.
    assert summary(result) == [
        (at(0.5), at(1.5), "met", 1.0),
        (at(1.5), at(4.5), "breached", 3.0),
        (at(4.5), None, "running", 0.5),
    ]
    first, _, current = cycles(result)
    assert first.key == "update:2026-11-23T08:30:00.000000Z"
    assert current.target == timedelta(hours=2)
    assert current.deadline == at(6.5)


def test_internal_notes_and_the_requesters_comments_are_no_update() -> None:
    events = [
        created(at()),
        responded(0.5),
        event("ticket.commented", at(1), visibility="internal", body="Notat"),
        public(1.5, author_role="requester"),
        public(2, author_role="agent"),
    ]
    assert summary(measure(events, as_of=at(3))) == [
        (at(0.5), at(2), "met", 1.5),
        (at(2), None, "running", 1.0),
    ]


def test_a_cycle_counts_business_time_only_across_the_night() -> None:
    # 15:00 Monday to 10:00 Tuesday: one hour before closing, two after opening.
    result = measure([created(at()), responded(6), public_at(at(1, days=1))], as_of=at(2, days=1))
    assert summary(result)[0] == (at(6), at(1, days=1), "breached", 3.0)


def test_a_wait_for_the_requester_ends_the_cycle_and_the_next_begins_when_work_resumes() -> None:
    events = [
        created(at()),
        responded(0.5),
        status(at(1), "pending_customer"),  # the requester is told: the cycle is kept
        public(2),  # an update while waiting: nothing runs, nothing is counted
        status(at(3), "in_progress"),
        public(4),
    ]
    assert summary(measure(events, as_of=at(4.5))) == [
        (at(0.5), at(1), "met", 0.5),
        (at(3), at(4), "met", 1.0),
        (at(4), None, "running", 0.5),
    ]


def test_resolving_stops_the_cycle_and_a_reopen_starts_one() -> None:
    events = [
        created(at()),
        responded(0.5),
        status(at(2), "resolved"),
        status(at(3), "in_progress"),
        status(at(6), "resolved"),
    ]
    assert summary(measure(events, as_of=at(7))) == [
        (at(0.5), at(2), "met", 1.5),
        (at(3), at(6), "breached", 3.0),
    ]


def test_a_ticket_resolved_before_any_response_has_its_cycles_from_the_reopen() -> None:
    events = [created(at()), status(at(1), "resolved"), status(at(2), "in_progress")]
    assert summary(measure(events, as_of=at(3))) == [(at(2), None, "running", 1.0)]


def test_closing_stops_the_cycle() -> None:
    events = [created(at()), responded(0.5), status(at(1), "closed"), public(2)]
    assert summary(measure(events, as_of=at(3))) == [(at(0.5), at(1), "met", 0.5)]


def test_a_priority_change_mid_cycle_retargets_it() -> None:
    events = [
        created(at()),
        responded(0.5),
        event("ticket.priority_changed", at(1), priority="P1"),  # update interval 1h
    ]
    (current,) = cycles(measure(events, as_of=at(2)))
    assert (current.target, current.state) == (timedelta(hours=1), "breached")
    # A cycle that ended keeps the priority it ended under.
    ended = [*events[:2], public(0.9), events[2]]
    first, second = cycles(measure(ended, as_of=at(1.2)))
    assert (first.target, second.target) == (timedelta(hours=2), timedelta(hours=1))


def test_a_priority_without_an_update_target_measures_no_cycle() -> None:
    events = [created(at(), priority="P3"), responded(0.5), public(1)]
    assert cycles(measure(events, as_of=at(2))) == []
    retargeted = [*events, event("ticket.priority_changed", at(1.5), priority="P2")]
    assert summary(measure(retargeted, as_of=at(2))) == [(at(1), None, "running", 1.0)]


def test_an_update_exactly_at_the_deadline_keeps_the_interval() -> None:
    result = measure([created(at()), responded(0.5), public(2.5)], as_of=at(3))
    assert summary(result) == [
        (at(0.5), at(2.5), "met", 2.0),
        (at(2.5), None, "running", 0.5),  # the next cycle starts clean
    ]


def test_each_cycle_fires_its_own_steps_once() -> None:
    # Three silent spells of 3 hours: each cycle breaches, and its steps fire for it.
    events = [created(at(), ticket="U-1"), event("ticket.responded", at(0.5), ticket="U-1")]
    events += [
        event("ticket.commented", at(0.5 + 3 * n), ticket="U-1", visibility="public", body="x")
        for n in (1, 2)
    ]
    run = simulate(ClockMeter(config()), events, at(7))
    fired = [(s.clock_key, s.step) for s in run.steps if s.metric == "update"]
    assert len(fired) == len(set(fired))
    breaches = sorted(key for key, step in fired if step == 1.0)
    # The third, from 14:30, has run 1.5 of its 2 hours when the simulation ends at 16:00.
    assert breaches == [
        "update:2026-11-23T08:30:00.000000Z",
        "update:2026-11-23T11:30:00.000000Z",
    ]
    updates = [o for o in run.outcomes if o.metric == "update"]
    assert [o.outcome for o in updates] == ["breached", "breached", "open"]


def test_the_function_that_acts_stops_its_response_clock() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        event("ticket.commented", at(1.25), visibility="internal", body="Ser på det"),
    ]
    acting = clock(measure(events, as_of=at(2)), "ola:1:pc-software:response")
    assert (acting.started_at, acting.stopped_at) == (at(1), at(1.25))
    assert acting.elapsed == timedelta(minutes=15)
    assert acting.agreement.kind == "ola"


def test_a_function_that_does_not_act_breaches_its_response_target() -> None:
    events = [created(at()), event("ticket.assigned", at(1), function="pc-software")]
    acting = clock(measure(events, as_of=at(5)), "ola:1:pc-software:response")
    assert acting.state == "breached"
    assert acting.target < timedelta(hours=4)


def test_a_requesters_comment_is_no_act_and_a_reassignment_is() -> None:
    events = [
        created(at()),
        event("ticket.assigned", at(1), function="pc-software"),
        public(1.5, author_role="requester"),
        event("ticket.assigned", at(2), function="server-network"),
        event("ticket.responded", at(3)),
    ]
    result = measure(events, as_of=at(4))
    first = clock(result, "ola:1:pc-software:response")
    second = clock(result, "ola:2:server-network:response")
    assert (first.stopped_at, second.started_at, second.stopped_at) == (at(2), at(2), at(3))


def test_an_act_before_the_assignment_does_not_count_whatever_arrived_first() -> None:
    assigned = event("ticket.assigned", at(2), function="pc-software")
    note = event("ticket.commented", at(1), visibility="internal", body="Tidligere")
    work = status(at(3), "in_progress")
    in_order = measure([created(at()), note, assigned, work], as_of=at(4))
    arrived = measure([work, note, created(at()), assigned], as_of=at(4))
    acting = clock(in_order, "ola:1:pc-software:response")
    assert (acting.started_at, acting.stopped_at) == (at(2), at(3))
    assert arrived.clocks == in_order.clocks


KINDS = st.sampled_from(
    [
        ("ticket.responded", {}),
        ("ticket.commented", {"visibility": "public", "body": "x"}),
        ("ticket.commented", {"visibility": "internal", "body": "x"}),
        ("ticket.commented", {"visibility": "public", "body": "x", "author_role": "requester"}),
        ("ticket.status_changed", {"status": "pending_customer"}),
        ("ticket.status_changed", {"status": "in_progress"}),
        ("ticket.status_changed", {"status": "resolved"}),
        ("ticket.priority_changed", {"priority": "P1"}),
        ("ticket.assigned", {"function": "pc-software"}),
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(KINDS, st.integers(1, 4 * 40)), max_size=25))
def test_cycles_follow_one_another_inside_the_resolution_clocks_time(
    drawn: list[tuple[tuple[str, dict[str, str]], int]],
) -> None:
    events = [created(at())] + [
        event(type_, at(quarter / 4), **fields) for (type_, fields), quarter in drawn
    ]
    result = measure(events, as_of=at(12))
    ended = cycles(result)
    # Keyed by their start, in order; each begins no earlier than the one before ended.
    assert [c.key for c in ended] == sorted({c.key for c in ended})
    for before, after in itertools.pairwise(ended):
        assert before.stopped_at is not None
        assert before.stopped_at <= after.started_at
    # A cycle runs only while the resolution clock does.
    resolution = clock(result, "resolution")
    assert sum((c.elapsed for c in ended), timedelta()) <= resolution.elapsed


def test_updates_at_one_instant_keep_one_cycle_from_it() -> None:
    # Answered, resolved and reopened in the same second (in this order: events at one
    # instant are read in event id order): one cycle begins then.
    same_instant = [
        event("ticket.responded", at(1), event_id=UUID(int=1)),
        event("ticket.status_changed", at(1), status="resolved", event_id=UUID(int=2)),
        event("ticket.status_changed", at(1), status="in_progress", event_id=UUID(int=3)),
    ]
    events = [created(at()), *same_instant, public(2)]
    assert summary(measure(events, as_of=at(3))) == [
        (at(1), at(2), "met", 1.0),
        (at(2), None, "running", 1.0),
    ]
